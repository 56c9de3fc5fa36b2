package gossip

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// Transport is memberlist's network layer on one address: a UDP socket for packets
// and a TCP listener for streams, on the same port, as memberlist.NetTransport. It
// differs in what it allocates per packet. NetTransport reads every packet into a
// fresh 64 KiB buffer and hands that on; 500 agents in one process received 1.6
// million packets in a benchmark, and those buffers were a fifth of all CPU in
// allocation and a quarter more in the collector's assists, the largest cost in the
// profile. Transport reads into one buffer and hands on a copy of the packet's size.
//
// Its Shutdown never waits for a reader: the listeners give up a packet or stream
// nobody takes once it is shutting down.
type Transport struct {
	tcp     *net.TCPListener
	udp     *net.UDPConn
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	logger  *log.Logger
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

const (
	maxPacket = 65536
	// udpRecvBuf is the socket receive buffer asked for (the kernel caps it at
	// net.core.rmem_max): a burst of tree copies must not overflow it.
	udpRecvBuf = 2 << 20
)

// NewTransport binds TCP and UDP on ip:port (port 0: a port free for both).
func NewTransport(ip string, port int, logger *log.Logger) (*Transport, error) {
	addr := net.ParseIP(ip)
	if addr == nil {
		return nil, fmt.Errorf("gossip transport: bad bind address %q", ip)
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	// With port 0 the TCP port the kernel picks may be taken for UDP: try again.
	var err error
	for range 10 {
		var t *Transport
		t, err = bindBoth(addr, port)
		if err == nil {
			t.logger = logger
			t.wg.Add(2)
			go t.acceptStreams()
			go t.readPackets()
			return t, nil
		}
		if port != 0 {
			break
		}
	}
	return nil, fmt.Errorf("gossip transport: %w", err)
}

func bindBoth(ip net.IP, port int) (*Transport, error) {
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("TCP listener on %s port %d: %w", ip, port, err)
	}
	port = tl.Addr().(*net.TCPAddr).Port
	ul, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		tl.Close()
		return nil, fmt.Errorf("UDP listener on %s port %d: %w", ip, port, err)
	}
	// Best effort, as memberlist: a smaller buffer still works.
	for size := udpRecvBuf; size >= 64<<10; size /= 2 {
		if ul.SetReadBuffer(size) == nil {
			break
		}
	}
	return &Transport{
		tcp: tl, udp: ul, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		done: make(chan struct{}),
	}, nil
}

// GetAutoBindPort is the bound port (TCP and UDP).
func (t *Transport) GetAutoBindPort() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is the address others reach us at: ip and port when given,
// else the bound address, or for an unspecified one (0.0.0.0) this host's private
// address, as memberlist's NetTransport does.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		a := t.tcp.Addr().(*net.TCPAddr).IP
		if !a.IsUnspecified() {
			return a, t.GetAutoBindPort(), nil
		}
		var err error
		if ip, err = sockaddr.GetPrivateIP(); err != nil {
			return nil, 0, fmt.Errorf("failed to get interface addresses: %w", err)
		}
		if ip == "" {
			return nil, 0, errors.New("no private IP address found, and explicit IP not provided")
		}
		port = t.GetAutoBindPort()
	}
	a := net.ParseIP(ip)
	if a == nil {
		return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
	}
	if a4 := a.To4(); a4 != nil {
		a = a4
	}
	return a, port, nil
}

// WriteTo sends one packet.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// WriteToAddress sends one packet.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh delivers received packets.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh delivers accepted streams.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams }

// DialTimeout opens a stream.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", addr)
}

// DialAddressTimeout opens a stream.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// Shutdown closes both sockets and waits for the listeners to end.
func (t *Transport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.tcp.Close()
		t.udp.Close()
	})
	t.wg.Wait()
	return nil
}

func (t *Transport) closing() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *Transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.closing() {
				return
			}
			t.logger.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 {
			continue // memberlist needs at least the message type
		}
		b := make([]byte, n)
		copy(b, buf)
		p := &memberlist.Packet{Buf: b, From: from, Timestamp: ts}
		select {
		case t.packets <- p:
		case <-t.done:
			return
		}
	}
}

func (t *Transport) acceptStreams() {
	defer t.wg.Done()
	const maxDelay = time.Second
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closing() {
				return
			}
			// Out of descriptors, say: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), maxDelay)
			t.logger.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streams <- c:
		case <-t.done:
			c.Close()
			return
		}
	}
}
