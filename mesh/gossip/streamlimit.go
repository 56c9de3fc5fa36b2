package gossip

import (
	"net"
	"sync"

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

// streamLimiter is a Transport whose incoming streams are capped.
type streamLimiter struct {
	*Transport
	out  chan net.Conn
	done chan struct{}
	once sync.Once
	gate *netlimit.Gate
}

func newStreamLimiter(nt *Transport, total, perSource int, onDrop func()) *streamLimiter {
	gate := netlimit.NewGate(netlimit.NewPool(total), perSource)
	gate.OnRefuse = onDrop
	l := &streamLimiter{Transport: nt, out: make(chan net.Conn), done: make(chan struct{}), gate: gate}
	go l.run()
	return l
}

func (l *streamLimiter) StreamCh() <-chan net.Conn { return l.out }

func (l *streamLimiter) Shutdown() error {
	l.once.Do(func() { close(l.done) })
	return l.Transport.Shutdown()
}

func (l *streamLimiter) run() {
	for {
		select {
		case <-l.done:
			return
		case c := <-l.Transport.StreamCh():
			c, ok := l.gate.Admit(c)
			if !ok {
				continue
			}
			select {
			case l.out <- c:
			case <-l.done:
				c.Close()
				return
			}
		}
	}
}
