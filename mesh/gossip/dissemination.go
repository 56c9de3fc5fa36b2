package gossip

import (
	"fmt"

	"github.com/hashicorp/memberlist"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Publish disseminates local changes: straight to every alive member now, and into the
// gossip queue as a backup.
func (g *Gossip) Publish(rs ...*catalog.Record) {
	if len(rs) == 0 || g.closed.Load() {
		return
	}
	msg, err := encode(msgRecords, rs)
	if err != nil {
		g.log.Error("encode records", "err", err)
		return
	}
	for _, n := range g.alive(false) {
		g.send(n, msgRecords, msg)
	}
	for _, r := range rs {
		if one, err := encode(msgRecords, []*catalog.Record{r}); err == nil {
			g.queue.QueueBroadcast(&broadcast{name: r.ID().String(), msg: one})
		}
	}
}

// bestEffortLimit keeps a message inside one UDP packet with memberlist's framing and
// encryption overhead.
const bestEffortLimit = 1100

func (g *Gossip) send(n *memberlist.Node, t msgType, msg []byte) {
	var err error
	if len(msg) <= bestEffortLimit {
		err = g.ml.SendBestEffort(n, msg)
	} else {
		err = g.ml.SendReliable(n, msg)
	}
	if err != nil {
		g.log.Debug("send failed", "to", n.Name, "type", t, "err", err)
		g.metrics.sendErrors.WithLabelValues(t.String()).Inc()
		return
	}
	g.metrics.sent.WithLabelValues(t.String()).Inc()
	if (t >= msgAERoot && t <= msgAEWant) || t == msgAESubs {
		g.metrics.aeBytes.WithLabelValues("sent").Add(float64(len(msg)))
	}
}

func (g *Gossip) sendTo(name string, t msgType, v any) error {
	n := g.node(name)
	if n == nil {
		return fmt.Errorf("host %q is not a member", name)
	}
	msg, err := encode(t, v)
	if err != nil {
		return err
	}
	g.send(n, t, msg)
	return nil
}

// broadcast is a queued record; a newer record for the same id invalidates it.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.name == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// memberChanged tells dissemination that membership moved.
func (g *Gossip) memberChanged() {}
