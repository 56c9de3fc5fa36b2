package netns

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, err
	}
	defer netns.Set(orig)
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	const ethPAll = 0x0003
	proto := int(ethPAll>>8 | (ethPAll&0xff)<<8) // network byte order
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, proto)
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index}); err != nil {
		syscall.Close(fd)
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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return 0, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return 0, err
	}
	defer netns.Set(orig)
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
