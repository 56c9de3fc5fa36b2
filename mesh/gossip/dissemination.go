package gossip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
	"github.com/dogwood/dogwood/mesh/record"
)

// Dissemination over the network: the broadcast tree itself is proto.Tree; this file
// feeds it local changes, received tree messages, membership and time, and sends
// what it queues (UDP when it fits a packet, TCP otherwise). A change reaches every
// host along the tree, one eager copy per host, and is announced by id on the other
// links; anti-entropy (antientropy.go) repairs anything the tree missed.
//
// The tree's links are laid out from membership (proto.Ring): every host computes
// the same tree from the same member list, so it does not reshape with traffic.

// TreeDegree is how many lazy neighbors each host picks at random (it is picked by
// about as many): they hear of every change by id and repair what a tree link lost.
const TreeDegree = 2

// batchFrom is the fleet size from which eager copies are batched per link (see
// proto.TreeConfig.EagerInterval). Batching saves packets when changes stream in;
// in a small fleet, measured with creates one after another (each waiting for the
// last to arrive everywhere), it held every copy for the window: 5 agents went from
// p50 0.8 ms to 17 ms.
const batchFrom = 100

// relayoutEvery bounds how often membership changes lay the tree out again (a fleet
// forming sends a join event per member to every member).
// (at 500 agents, laying out every 200 ms was 6% of the CPU while they formed).
const relayoutEvery = time.Second

// treeIdle is how often the tree loop wakes with nothing due: it expires old ids and
// tops up neighbors.
const treeIdle = time.Second

// Publish disseminates local changes (already applied to the local catalog).
func (g *Gossip) Publish(rs ...*record.Record) {
	if len(rs) == 0 || g.closed.Load() {
		return
	}
	payload := encodeRecordList(rs)
	g.refillTree()
	g.treeMu.Lock()
	g.tree.Publish(time.Now(), payload)
	out := g.tree.Outbox()
	g.treeMu.Unlock()
	g.sendTree(out)
	g.kickTree()
}

// onTree handles one received tree message. A change's records are validated before
// the tree sees it, so a broken payload is never forwarded.
func (g *Gossip) onTree(body []byte) {
	from, raw, err := splitTreeFrame(body)
	if err != nil {
		g.drop("malformed", err)
		return
	}
	g.onAlive(from)
	m, err := proto.Decode(raw)
	if err != nil {
		g.drop("malformed", err)
		return
	}
	if m.Kind == proto.KindJoin {
		g.learn(from, string(m.Payload))
	}
	msgs := m.Entries()
	// Every change in the message is validated before the tree sees any of it.
	batches := make([][]*record.Record, len(msgs))
	for i := range msgs {
		if msgs[i].Kind != proto.KindGossip {
			continue
		}
		if batches[i], err = decodeRecordList(msgs[i].Payload); err != nil {
			g.drop("invalid_record", err)
			return
		}
		msgs[i].Payload = append([]byte(nil), msgs[i].Payload...)
	}
	var rs []*record.Record
	now := time.Now()
	g.treeMu.Lock()
	for i := range msgs {
		if _, fresh := g.tree.Receive(now, from, msgs[i]); fresh {
			rs = append(rs, batches[i]...)
		}
	}
	out := g.tree.Outbox()
	g.treeMu.Unlock()
	g.sendTree(out)
	if len(rs) > 0 {
		g.merge(rs)
		g.aeMu.Lock()
		g.ae.NoteChange(time.Now())
		g.aeMu.Unlock()
	}
	g.kickTree()
}

func (g *Gossip) kickTree() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// treeLoop runs the tree's timers: batched announcements, grafts of missing changes,
// expiry, and keeping enough neighbors.
func (g *Gossip) treeLoop() {
	defer g.wg.Done()
	t := time.NewTimer(treeIdle)
	defer t.Stop()
	var laid, spoke time.Time
	compact := g.cfg.CompactTree
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
		}
		now := time.Now()
		if g.relaid.Load() && now.Sub(laid) >= relayoutEvery {
			laid = now
			g.relayout()
		}
		g.refillTree()
		// The compact tree messages go out only while every member this host talks
		// to reads them (protocol 3, v0.3.0 on); a member of an older release that
		// joins turns them off again within a second.
		var switchTo *bool
		if now.Sub(spoke) >= time.Second {
			spoke = now
			if on := g.cfg.CompactTree || g.versions.ReadsCompact(); on != compact {
				compact, switchTo = on, &on
				g.log.Info("broadcast tree messages", "compact", on, "protocol", g.versions.Speak())
			}
		}
		g.treeMu.Lock()
		if switchTo != nil {
			g.tree.SetCompact(*switchTo)
		}
		if d := g.tree.Deadline(); d.IsZero() || !now.Before(d) {
			g.tree.Tick(now)
		}
		out := g.tree.Outbox()
		next := g.tree.Deadline()
		g.treeMu.Unlock()
		g.sendTree(out)
		wait := treeIdle
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		if g.relaid.Load() {
			wait = min(wait, max(relayoutEvery-time.Since(laid), time.Millisecond))
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// refillTree offers alive members as neighbors when the tree wants more.
func (g *Gossip) refillTree() {
	g.treeMu.Lock()
	need := g.tree.NeedPeers()
	g.treeMu.Unlock()
	if need == 0 {
		return
	}
	names := g.aliveNames(false) // AddPeers picks among them with its own random source
	g.treeMu.Lock()
	g.tree.AddPeers(names)
	out := g.tree.Outbox()
	g.treeMu.Unlock()
	g.sendTree(out)
}

// memberChanged keeps the tree's neighbors among live members.
func (g *Gossip) memberChanged(name string, live bool) {
	if !live {
		g.treeMu.Lock()
		g.tree.RemovePeer(name)
		g.treeMu.Unlock()
	}
	g.relaid.Store(true)
	if !g.closed.Load() {
		g.kickTree()
	}
}

// graftWait derives the tree's graft timeout for an announcer from the round-trip
// time our network coordinates estimate to it (0: unknown, the tree's default).
func (g *Gossip) graftWait(peer string) time.Duration {
	rtt, ok := g.RTT(peer)
	if !ok {
		return 0
	}
	return proto.GraftWaitFor(int(g.depth.Load()), rtt)
}

// relayout gives the tree its links in the layout of the current members.
func (g *Gossip) relayout() {
	g.relaid.Store(false)
	// This host is among the alive members; NewRing ignores a name given twice, so
	// it is in the layout even before memberlist lists it.
	ring := proto.NewRing(append(g.aliveNames(true), g.cfg.Name), 0)
	g.depth.Store(int32(ring.Depth()))
	g.fleet.Store(int32(ring.Len()))
	links := ring.Links(g.cfg.Name)
	g.treeMu.Lock()
	g.tree.SetLinks(links)
	if ring.Len() < batchFrom {
		g.tree.SetEagerInterval(-1)
	} else {
		g.tree.SetEagerInterval(0)
	}
	out := g.tree.Outbox()
	g.treeMu.Unlock()
	g.sendTree(out)
}

func (g *Gossip) sendTree(out []proto.Send) {
	for _, s := range out {
		n := g.node(s.To)
		if n == nil {
			continue
		}
		if s.Msg.Kind == proto.KindJoin {
			s.Msg.Payload = []byte(g.selfAddr())
		}
		buf := seal(time.Now(), treeFrame(g.cfg.Name, &s.Msg))
		g.send(n, msgTree, buf)
		g.metrics.treeBytes.WithLabelValues(treeKind(s.Msg.Kind)).Add(float64(len(buf)))
	}
}

func treeKind(k proto.Kind) string {
	switch k {
	case proto.KindGossip, proto.KindPack:
		return "gossip"
	case proto.KindIHave, proto.KindIHaveShort:
		return "ihave"
	case proto.KindGraft, proto.KindGraftShort:
		return "graft"
	case proto.KindPrune:
		return "prune"
	case proto.KindJoin:
		return "join"
	case proto.KindBatch:
		return "gossip"
	}
	return "unknown"
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

// sendBytes sends a message whose body is already encoded.
func (g *Gossip) sendBytes(name string, t msgType, body []byte) error {
	n := g.node(name)
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
