package meshbench

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/hashicorp/memberlist"
)

// CountingTransport is the agent's gossip.Transport (real UDP and TCP sockets) with
// counters on everything it writes and reads, and a gate that, while closed, cuts the
// host off (drops packets both ways and refuses streams) so a benchmark can load a
// catalog before the host talks to anyone.
type CountingTransport struct {
	inner *gossip.Transport

	packetsOut, packetBytesOut   atomic.Int64
	streamsOut, streamBytesOut   atomic.Int64
	packetBytesIn, streamBytesIn atomic.Int64

	closed  atomic.Bool // gate
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
}

var errGated = errors.New("meshbench: transport gate closed")

// NewCountingTransport binds ip on a free port (UDP and TCP, like memberlist does).
func NewCountingTransport(ip string, gated bool) (*CountingTransport, error) {
	nt, err := gossip.NewTransport(ip, 0, nil)
	if err != nil {
		return nil, err
	}
	t := &CountingTransport{inner: nt, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	t.closed.Store(gated)
	go t.forward()
	return t, nil
}

func (t *CountingTransport) forward() {
	for {
		select {
		case p := <-t.inner.PacketCh():
			if t.closed.Load() {
				continue
			}
			t.packetBytesIn.Add(int64(len(p.Buf)))
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case c := <-t.inner.StreamCh():
			if t.closed.Load() {
				c.Close()
				continue
			}
			select {
			case t.streams <- &countingConn{Conn: c, out: &t.streamBytesOut, in: &t.streamBytesIn}:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

// Port is the bound port (UDP and TCP).
func (t *CountingTransport) Port() int { return t.inner.GetAutoBindPort() }

// Open lets traffic through.
func (t *CountingTransport) Open() { t.closed.Store(false) }

// Traffic is a snapshot of the counters.
type Traffic struct {
	PacketsOut, PacketBytesOut   int64
	StreamsOut, StreamBytesOut   int64
	PacketBytesIn, StreamBytesIn int64
}

// BytesOut is everything written: UDP payloads plus TCP stream bytes (memberlist
// framing and encryption included, IP/UDP/TCP headers not).
func (t Traffic) BytesOut() int64 { return t.PacketBytesOut + t.StreamBytesOut }

// Sub returns t - o.
func (t Traffic) Sub(o Traffic) Traffic {
	return Traffic{
		t.PacketsOut - o.PacketsOut, t.PacketBytesOut - o.PacketBytesOut,
		t.StreamsOut - o.StreamsOut, t.StreamBytesOut - o.StreamBytesOut,
		t.PacketBytesIn - o.PacketBytesIn, t.StreamBytesIn - o.StreamBytesIn,
	}
}

// Add returns t + o.
func (t Traffic) Add(o Traffic) Traffic {
	return Traffic{
		t.PacketsOut + o.PacketsOut, t.PacketBytesOut + o.PacketBytesOut,
		t.StreamsOut + o.StreamsOut, t.StreamBytesOut + o.StreamBytesOut,
		t.PacketBytesIn + o.PacketBytesIn, t.StreamBytesIn + o.StreamBytesIn,
	}
}

// Traffic reads the counters.
func (t *CountingTransport) Traffic() Traffic {
	return Traffic{
		t.packetsOut.Load(), t.packetBytesOut.Load(),
		t.streamsOut.Load(), t.streamBytesOut.Load(),
		t.packetBytesIn.Load(), t.streamBytesIn.Load(),
	}
}

// memberlist.Transport and NodeAwareTransport.

func (t *CountingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, t.inner.GetAutoBindPort())
}

func (t *CountingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.closed.Load() {
		return time.Now(), nil
	}
	ts, err := t.inner.WriteTo(b, addr)
	if err == nil {
		t.packetsOut.Add(1)
		t.packetBytesOut.Add(int64(len(b)))
	}
	return ts, err
}

func (t *CountingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *CountingTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *CountingTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if t.closed.Load() {
		return nil, errGated
	}
	c, err := t.inner.DialTimeout(addr, d)
	if err != nil {
		return nil, err
	}
	t.streamsOut.Add(1)
	return &countingConn{Conn: c, out: &t.streamBytesOut, in: &t.streamBytesIn}, nil
}

func (t *CountingTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, d)
}

func (t *CountingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *CountingTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return t.inner.Shutdown()
}

var _ memberlist.NodeAwareTransport = (*CountingTransport)(nil)

type countingConn struct {
	net.Conn
	out, in *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	return n, err
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	return n, err
}
