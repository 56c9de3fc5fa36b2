package gossip

import (
	"net"
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
	out  chan net.Conn
	done chan struct{}
	once sync.Once
	gate *netlimit.Gate
}

func newStreamLimiter(nt *memberlist.NetTransport, total, perSource int, onDrop func()) *streamLimiter {
	gate := netlimit.NewGate(netlimit.NewPool(total), perSource)
	gate.OnRefuse = onDrop
	l := &streamLimiter{NetTransport: nt, out: make(chan net.Conn), done: make(chan struct{}), gate: gate}
	go l.run()
	return l
}

func (l *streamLimiter) StreamCh() <-chan net.Conn { return l.out }

func (l *streamLimiter) Shutdown() error {
	l.once.Do(func() { close(l.done) })
	return ShutdownDraining(l.NetTransport)
}

// ShutdownDraining shuts nt down while taking what its listeners still deliver. They
// block sending to unbuffered channels, and Shutdown waits for them: once whoever
// read those channels has stopped (a wrapping transport's forwarder), a packet or
// stream arriving during shutdown would hang it for good.
func ShutdownDraining(nt *memberlist.NetTransport) error {
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-nt.PacketCh():
			case c := <-nt.StreamCh():
				c.Close()
			case <-stop:
				return
			}
		}
	}()
	err := nt.Shutdown()
	close(stop)
	return err
}

func (l *streamLimiter) run() {
	for {
		select {
		case <-l.done:
			return
		case c := <-l.NetTransport.StreamCh():
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
