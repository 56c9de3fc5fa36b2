package gossip

import (
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// watchedTransport wraps memberlist's transport to observe one event memberlist has
// no delegate for: this host failing to reach another. memberlist's probe falls back
// to a TCP ping when a UDP ping goes unanswered, and suspects the host only when that
// fails too; our reliable sends dial the same way. A failed dial to a named host is
// therefore exactly the moment our side starts suspecting it, and it is reported
// here instead of being read from memberlist's log text. Suspicion ends on any sign
// of life (membership.go: onAlive).
type watchedTransport struct {
	memberlist.Transport
	unreachable func(name string)
}

var _ memberlist.NodeAwareTransport = (*watchedTransport)(nil)

func (w *watchedTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if nt, ok := w.Transport.(memberlist.NodeAwareTransport); ok {
		return nt.WriteToAddress(b, a)
	}
	return w.Transport.WriteTo(b, a.Addr)
}

func (w *watchedTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	var c net.Conn
	var err error
	if nt, ok := w.Transport.(memberlist.NodeAwareTransport); ok {
		c, err = nt.DialAddressTimeout(a, d)
	} else {
		c, err = w.Transport.DialTimeout(a.Addr, d)
	}
	if err != nil && a.Name != "" {
		w.unreachable(a.Name)
	}
	return c, err
}
