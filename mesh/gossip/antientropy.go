package gossip

import (
	"encoding/json"
	"github.com/dogwood/dogwood/mesh/record"
	"math/rand"
	"time"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
)

// Anti-entropy over the network: the exchange itself is proto.AntiEntropy; this file
// runs its periodic round, carries its messages over memberlist, and applies the
// records it repairs. Every interval a host sends its catalog digest (8 bytes) to one
// random member; only when digests differ do they exchange bucket digests, then leaf
// digests, then the headers of differing leaves, then just the records that differ.
// Idle cost is constant whatever the catalog and fleet size; a host that was away
// catches up by receiving what it missed.

// Wire forms: each proto message with who sent it.
type (
	aeRoot struct {
		origin
		*proto.AERoot
	}
	aeBuckets struct {
		origin
		*proto.AEBuckets
	}
	aeSubs struct {
		origin
		*proto.AESubs
	}
	aeHeaders struct {
		origin
		*proto.AEHeaders
	}
	aeWant struct {
		origin
		*proto.AEWant
	}
)

func (g *Gossip) aeLoop() {
	defer g.wg.Done()
	base := g.cfg.AEInterval
	for {
		// Jitter keeps hosts that started together from probing in lockstep.
		d := base/2 + time.Duration(rand.Int63n(int64(base)))
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(d):
		}
		now := time.Now()
		g.aeMu.Lock()
		if r := g.returned.Load(); r != 0 {
			g.ae.NoteReturn(time.Unix(0, r))
		}
		due := g.ae.Due(now)
		base = g.ae.Period(now, g.cfg.AEInterval)
		g.aeMu.Unlock()
		if !due {
			continue
		}
		peers := g.alive(false)
		if len(peers) == 0 {
			continue
		}
		g.startAE(peers[rand.Intn(len(peers))].Name)
	}
}

// startAE opens an exchange with one member by sending our root digest.
func (g *Gossip) startAE(name string) {
	if g.closed.Load() {
		return
	}
	g.aeMu.Lock()
	if g.ae.Start(time.Now(), name) {
		g.metrics.aeRounds.Inc()
	}
	out := g.ae.Outbox()
	g.aeMu.Unlock()
	g.sendAE(out)
}

// onAE hands one received message to the exchange and sends what it answers.
func (g *Gossip) onAE(from string, m any) {
	g.aeMu.Lock()
	err := g.ae.Receive(from, m)
	out := g.ae.Outbox()
	g.aeMu.Unlock()
	if err != nil {
		g.drop("malformed", err)
	}
	g.sendAE(out)
}

func (g *Gossip) sendAE(out []proto.AESend) {
	o := g.origin()
	for _, s := range out {
		var err error
		switch m := s.Msg.(type) {
		case *proto.AERoot:
			err = g.sendTo(s.To, msgAERoot, aeRoot{o, m})
		case *proto.AEBuckets:
			err = g.sendTo(s.To, msgAEBuckets, aeBuckets{o, m})
		case *proto.AESubs:
			err = g.sendTo(s.To, msgAESubs, aeSubs{o, m})
		case *proto.AEHeaders:
			err = g.sendTo(s.To, msgAEHeaders, aeHeaders{o, m})
		case *proto.AEWant:
			err = g.sendTo(s.To, msgAEWant, aeWant{o, m})
		case *proto.AERecords:
			for _, body := range splitRecordList(m.Records, maxRecordsMsg) {
				if err = g.sendBytes(s.To, msgRecords, body); err != nil {
					break
				}
			}
			if err == nil {
				g.metrics.aeRecords.Add(float64(len(m.Records)))
			}
		}
		if err != nil {
			g.log.Debug("anti-entropy send", "to", s.To, "err", err)
		}
	}
}

// pushPullState is what memberlist's push/pull (on join and periodically) carries for
// us: only our digest root. It then starts a real anti-entropy exchange when roots
// differ, instead of shipping the whole catalog.
func (g *Gossip) pushPullState() []byte {
	b, _ := json.Marshal(aeRoot{g.origin(), &proto.AERoot{Root: g.ae.Root()}})
	return b
}

func (g *Gossip) mergePushPull(buf []byte) {
	var m aeRoot
	if err := json.Unmarshal(buf, &m); err != nil || m.AERoot == nil {
		g.drop("malformed", err)
		return
	}
	if m.From == "" || m.From == g.cfg.Name {
		return
	}
	g.learn(m.From, m.Addr)
	if g.ae.Root() != m.Root && !g.closed.Load() {
		go g.startAE(m.From)
	}
}

// onAEMsg drops a message whose body was missing (a nil embedded pointer).
func onAEMsg[T any](g *Gossip, from string, m *T) {
	if m == nil {
		g.drop("malformed", nil)
		return
	}
	g.onAE(from, m)
}

// aeDedupe is how long an exchange with one peer suppresses another.
const aeDedupe = 2 * time.Second

// splitRecordList encodes rs as record-list messages of at most limit bytes each
// (a single record larger than limit goes alone), so no stream a receiver reads
// before authenticating it needs more than its per-stream budget.
func splitRecordList(rs []*record.Record, limit int) [][]byte {
	b := encodeRecordList(rs)
	if len(b) <= limit || len(rs) < 2 {
		return [][]byte{b}
	}
	return append(splitRecordList(rs[:len(rs)/2], limit), splitRecordList(rs[len(rs)/2:], limit)...)
}
