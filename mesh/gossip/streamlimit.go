package gossip

import (
	"net"
	"net/netip"
	"sync"

	"github.com/hashicorp/memberlist"

	"github.com/dogwood/dogwood/mesh/netlimit"
)

// Gossip's TCP listener (push/pull, messages too big for a packet) is open to the
// underlay. memberlist accepts every connection and gives each its TCPTimeout (10 s
// on LAN) before closing it, so a flood of idle connections would hold one file
// descriptor each for that long, enough to run the process out of them. The
// limiter below caps streams in total and per source and closes the excess at once;
// a legitimate host uses a handful of short streams at a time.
const (
	maxStreams          = 512
	maxStreamsPerSource = 64
)

// streamLimiter is a NetTransport whose incoming streams are capped.
type streamLimiter struct {
	*memberlist.NetTransport
	out    chan net.Conn
	done   chan struct{}
	once   sync.Once
	pool   *netlimit.Pool
	mu     sync.Mutex
	bySrc  map[netip.Prefix]int
	perSrc int
	onDrop func()
}

func newStreamLimiter(nt *memberlist.NetTransport, total, perSource int, onDrop func()) *streamLimiter {
	l := &streamLimiter{NetTransport: nt, out: make(chan net.Conn), done: make(chan struct{}),
		pool: netlimit.NewPool(total), bySrc: map[netip.Prefix]int{}, perSrc: perSource, onDrop: onDrop}
	go l.run()
	return l
}

func (l *streamLimiter) StreamCh() <-chan net.Conn { return l.out }

func (l *streamLimiter) Shutdown() error {
	l.once.Do(func() { close(l.done) })
	return l.NetTransport.Shutdown()
}

func (l *streamLimiter) run() {
	for {
		select {
		case <-l.done:
			return
		case c := <-l.NetTransport.StreamCh():
			src := netlimit.Source(c.RemoteAddr())
			if !l.take(src) {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
				l.onDrop()
				continue
			}
			select {
			case l.out <- &limitedConn{Conn: c, release: func() { l.release(src) }}:
			case <-l.done:
				c.Close()
				return
			}
		}
	}
}

func (l *streamLimiter) take(src netip.Prefix) bool {
	if !l.pool.Take() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySrc[src] >= l.perSrc {
		l.pool.Release()
		return false
	}
	l.bySrc[src]++
	return true
}

func (l *streamLimiter) release(src netip.Prefix) {
	l.mu.Lock()
	if l.bySrc[src]--; l.bySrc[src] <= 0 {
		delete(l.bySrc, src)
	}
	l.mu.Unlock()
	l.pool.Release()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
