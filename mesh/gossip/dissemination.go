package gossip

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

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

// broadcast drives the broadcast tree (proto.Tree) over the network.
type broadcast struct {
	g *Gossip

	mu   sync.Mutex // serializes t; not held while sending
	t    *proto.Tree
	kick chan struct{} // the tree has an earlier deadline
	// relaid is set when membership changed and the tree's links must be laid out
	// again from the new view (loop does it, at most every relayoutEvery).
	relaid atomic.Bool
	// depth is the laid-out tree's depth (graftWait).
	depth atomic.Int32
	// fleet is how many members the tree was last laid out over (ExchangeOnReturn).
	fleet atomic.Int32
}

func newBroadcast(g *Gossip) *broadcast {
	b := &broadcast{g: g, kick: make(chan struct{}, 1)}
	b.t = proto.NewTree(proto.TreeConfig{Self: g.cfg.Name, Degree: TreeDegree, Seed: rand.Int63(), GraftWait: b.graftWait, Compact: g.cfg.CompactTree})
	b.relaid.Store(true) // the first loop lays the tree out
	return b
}

// Publish disseminates local changes (already applied to the local catalog).
func (g *Gossip) Publish(rs ...*record.Record) { g.tree.publish(rs...) }

// publish hands local changes to the tree and sends what it queues at once.
func (b *broadcast) publish(rs ...*record.Record) {
	g := b.g
	if len(rs) == 0 || g.closed.Load() {
		return
	}
	payload := encodeRecordList(rs)
	b.refill()
	b.mu.Lock()
	b.t.Publish(time.Now(), payload)
	out := b.t.Outbox()
	b.mu.Unlock()
	b.send(out)
	b.wake()
}

// receive handles one received tree message. A change's records are validated before
// the tree sees it, so a broken payload is never forwarded.
func (b *broadcast) receive(body []byte) {
	g := b.g
	from, raw, err := splitTreeFrame(body)
	if err != nil {
		g.drop("malformed", err)
		return
	}
	g.members.onAlive(from)
	m, err := proto.Decode(raw)
	if err != nil {
		g.drop("malformed", err)
		return
	}
	if m.Kind == proto.KindJoin {
		g.members.learn(from, string(m.Payload))
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
	b.mu.Lock()
	for i := range msgs {
		if _, fresh := b.t.Receive(now, from, msgs[i]); fresh {
			rs = append(rs, batches[i]...)
		}
	}
	out := b.t.Outbox()
	b.mu.Unlock()
	b.send(out)
	if len(rs) > 0 {
		g.merge(rs)
		g.ae.noteChange(time.Now())
	}
	b.wake()
}

func (b *broadcast) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// loop runs the tree's timers: batched announcements, grafts of missing changes,
// expiry, and keeping enough neighbors.
func (b *broadcast) loop() {
	g := b.g
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
		case <-b.kick:
		}
		now := time.Now()
		if b.relaid.Load() && now.Sub(laid) >= relayoutEvery {
			laid = now
			b.relayout()
		}
		b.refill()
		// The compact tree messages go out only while every member this host talks
		// to reads them (protocol 3, v0.3.0 on); a member of an older release that
		// joins turns them off again within a second.
		var switchTo *bool
		if now.Sub(spoke) >= time.Second {
			spoke = now
			if on := g.cfg.CompactTree || g.versions.readsCompact(); on != compact {
				compact, switchTo = on, &on
				g.log.Info("broadcast tree messages", "compact", on, "protocol", g.versions.speak())
			}
		}
		b.mu.Lock()
		if switchTo != nil {
			b.t.SetCompact(*switchTo)
		}
		if d := b.t.Deadline(); d.IsZero() || !now.Before(d) {
			b.t.Tick(now)
		}
		out := b.t.Outbox()
		next := b.t.Deadline()
		b.mu.Unlock()
		b.send(out)
		wait := treeIdle
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		if b.relaid.Load() {
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

// refill offers alive members as neighbors when the tree wants more.
func (b *broadcast) refill() {
	g := b.g
	b.mu.Lock()
	need := b.t.NeedPeers()
	b.mu.Unlock()
	if need == 0 {
		return
	}
	names := g.members.aliveNames(false) // AddPeers picks among them with its own random source
	b.mu.Lock()
	b.t.AddPeers(names)
	out := b.t.Outbox()
	b.mu.Unlock()
	b.send(out)
}

// memberChanged keeps the tree's neighbors among live members.
func (b *broadcast) memberChanged(name string, live bool) {
	g := b.g
	if !live {
		b.mu.Lock()
		b.t.RemovePeer(name)
		b.mu.Unlock()
	}
	b.relaid.Store(true)
	if !g.closed.Load() {
		b.wake()
	}
}

// graftWait derives the tree's graft timeout for an announcer from the round-trip
// time our network coordinates estimate to it (0: unknown, the tree's default).
func (b *broadcast) graftWait(peer string) time.Duration {
	g := b.g
	rtt, ok := g.RTT(peer)
	if !ok {
		return 0
	}
	return proto.GraftWaitFor(int(b.depth.Load()), rtt)
}

// relayout gives the tree its links in the layout of the current members.
func (b *broadcast) relayout() {
	g := b.g
	b.relaid.Store(false)
	// This host is among the alive members; NewRing ignores a name given twice, so
	// it is in the layout even before memberlist lists it.
	ring := proto.NewRing(append(g.members.aliveNames(true), g.cfg.Name), 0)
	b.depth.Store(int32(ring.Depth()))
	b.fleet.Store(int32(ring.Len()))
	links := ring.Links(g.cfg.Name)
	b.mu.Lock()
	b.t.SetLinks(links)
	if ring.Len() < batchFrom {
		b.t.SetEagerInterval(-1)
	} else {
		b.t.SetEagerInterval(0)
	}
	out := b.t.Outbox()
	b.mu.Unlock()
	b.send(out)
}

func (b *broadcast) send(out []proto.Send) {
	g := b.g
	for _, s := range out {
		n := g.members.node(s.To)
		if n == nil {
			continue
		}
		if s.Msg.Kind == proto.KindJoin {
			s.Msg.Payload = []byte(g.selfAddr())
		}
		buf := seal(time.Now(), treeFrame(g.cfg.Name, &s.Msg))
		g.send(n, msgTree, buf)
		g.metrics.treeBytesBy.of(s.Msg.Kind).Add(float64(len(buf)))
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
