package netns

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/dogwood/dogwood/peers/attach"
)

// sniffer records the IPv4 frames one interface sends or receives, as an attacker
// with a tap on the underlay would (AF_PACKET in the interface's namespace).
type sniffer struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte
	done   chan struct{}
	wg     sync.WaitGroup
}

func sniff(ns, iface string) (*sniffer, error) {
	fd := -1
	err := attach.InNamespace(ns, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		const ethPAll = 0x0003
		proto := int(ethPAll>>8 | (ethPAll&0xff)<<8) // network byte order
		if fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, proto); err != nil {
			return err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index}); err != nil {
			syscall.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tv := syscall.Timeval{Usec: 100000}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	s := &sniffer{fd: fd, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 65536)
		for {
			select {
			case <-s.done:
				return
			default:
			}
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil || n < 14 {
				continue
			}
			s.mu.Lock()
			s.frames = append(s.frames, append([]byte(nil), buf[:n]...))
			s.mu.Unlock()
		}
	}()
	return s, nil
}

func (s *sniffer) stop() [][]byte {
	close(s.done)
	s.wg.Wait()
	syscall.Close(s.fd)
	return s.frames
}

// recorded is what the capture holds toward one destination: UDP payloads and
// TCP streams (payload bytes of each connection in sequence order).
type recorded struct {
	udp     [][]byte
	streams [][]byte
}

func extract(frames [][]byte, dst netip.AddrPort) recorded {
	var r recorded
	type seg struct {
		seq  uint32
		data []byte
	}
	byConn := map[uint16][]seg{}
	for _, f := range frames {
		if binary.BigEndian.Uint16(f[12:14]) != 0x0800 || len(f) < 34 {
			continue
		}
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if total > len(ip) || ihl < 20 || total < ihl+8 {
			continue
		}
		daddr, _ := netip.AddrFromSlice(ip[16:20])
		l4 := ip[ihl:total]
		dport := binary.BigEndian.Uint16(l4[2:4])
		if daddr != dst.Addr() || dport != dst.Port() {
			continue
		}
		switch ip[9] {
		case 17:
			r.udp = append(r.udp, append([]byte(nil), l4[8:]...))
		case 6:
			off := int(l4[12]>>4) * 4
			if off > len(l4) || off == len(l4) {
				continue
			}
			sport := binary.BigEndian.Uint16(l4[0:2])
			byConn[sport] = append(byConn[sport], seg{binary.BigEndian.Uint32(l4[4:8]), append([]byte(nil), l4[off:]...)})
		}
	}
	for _, segs := range byConn {
		sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
		var stream []byte
		next := segs[0].seq
		for _, s := range segs {
			if s.seq != next { // a retransmission or a gap: keep what is contiguous
				if s.seq < next {
					continue
				}
				break
			}
			stream = append(stream, s.data...)
			next += uint32(len(s.data))
		}
		r.streams = append(r.streams, stream)
	}
	return r
}

// replay sends everything recorded to dst again from inside namespace ns.
func (r recorded) replay(ns string, dst netip.AddrPort) (int, error) {
	sent := 0
	err := attach.InNamespace(ns, func() error {
		var err error
		sent, err = r.replayHere(dst)
		return err
	})
	return sent, err
}

func (r recorded) replayHere(dst netip.AddrPort) (int, error) {
	sent := 0
	uc, err := net.Dial("udp", dst.String())
	if err != nil {
		return 0, err
	}
	defer uc.Close()
	for _, p := range r.udp {
		if _, err := uc.Write(p); err == nil {
			sent++
		}
	}
	for _, s := range r.streams {
		c, err := net.DialTimeout("tcp", dst.String(), 2*time.Second)
		if err != nil {
			return sent, fmt.Errorf("replay stream: %w", err)
		}
		c.Write(s)
		c.Close()
		sent++
	}
	return sent, nil
}

// sendRaw writes whole Ethernet frames out of iface in namespace ns (AF_PACKET),
// as a hostile neighbour on the underlay segment would: no route, no source check.
func sendRaw(ns, iface string, frames ...[]byte) error {
	return attach.InNamespace(ns, func() error { return sendRawHere(iface, frames) })
}

func sendRawHere(iface string, frames [][]byte) error {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	for _, f := range frames {
		to := &syscall.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
		copy(to.Addr[:], f[:6])
		if err := syscall.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("send raw frame on %s: %w", iface, err)
		}
	}
	return nil
}

// udp6Frame builds an Ethernet frame carrying one IPv6 UDP datagram with whatever
// source the caller claims, checksum included (IPv6 receivers drop a zero one).
func udp6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udpLen := 8 + len(payload)
	f := make([]byte, 14+40+udpLen)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], 0x86dd)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(udpLen))
	ip[6] = 17 // UDP
	ip[7] = 64
	s16, d16 := src.As16(), dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	u := ip[40:]
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(udpLen))
	copy(u[8:], payload)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(ip[8:40])
	sum += uint32(udpLen) + 17
	add(u)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:8], cs)
	return f
}
