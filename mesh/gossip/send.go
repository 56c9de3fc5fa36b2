package gossip

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Sending: every user message goes out through send, which picks UDP or TCP by
// size and never blocks its caller on the network.

// bestEffortLimit keeps a message inside one UDP packet with memberlist's framing and
// encryption overhead.
const bestEffortLimit = 1100

// maxReliableSends bounds reliable sends in flight; beyond it a send is dropped
// and counted as failed (anti-entropy repairs what a dropped tree message lost).
const maxReliableSends = 256

// send sends one message: over UDP when it fits a packet, else over TCP on a
// goroutine of its own. It runs inside memberlist's callbacks (a received tree or
// anti-entropy message is answered at once), and a TCP dial can wait memberlist's
// 10 s on a host behind a broken link: send never waits for it.
func (g *Gossip) send(n *memberlist.Node, t msgType, msg []byte) {
	if len(msg) <= bestEffortLimit {
		g.sent(n.Name, t, msg, g.ml.SendBestEffort(n, msg))
		return
	}
	select {
	case g.reliable <- struct{}{}:
	default:
		g.sent(n.Name, t, msg, errTooManySends)
		return
	}
	if g.closed.Load() {
		<-g.reliable
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := g.ml.SendReliable(n, msg)
		<-g.reliable
		g.sent(n.Name, t, msg, err)
	}()
}

var errTooManySends = errors.New("too many reliable sends in flight")

// sent counts how a send went.
func (g *Gossip) sent(to string, t msgType, msg []byte, err error) {
	if err != nil {
		g.log.Debug("send failed", "to", to, "type", t, "err", err)
		g.metrics.sendErrorsBy.of(t).Inc()
		return
	}
	g.metrics.sentBy.of(t).Inc()
	if (t >= msgAERoot && t <= msgAEWant) || t == msgAESubs {
		g.metrics.aeSent.of(0).Add(float64(len(msg)))
	}
}

// sendBytes sends a message whose body is already encoded.
func (g *Gossip) sendBytes(name string, t msgType, body []byte) error {
	n := g.members.node(name)
	if n == nil {
		return fmt.Errorf("host %q is not a member", name)
	}
	g.send(n, t, frame(t, body))
	return nil
}

// sendTo sends v as JSON.
func (g *Gossip) sendTo(name string, t msgType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return g.sendBytes(name, t, b)
}
