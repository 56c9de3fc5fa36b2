package gossip

import (
	"encoding/json"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
	"github.com/dogwood/dogwood/mesh/record"
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

// antiEntropy runs the periodic exchange (proto.AntiEntropy) over the network.
type antiEntropy struct {
	g *Gossip

	mu sync.Mutex // serializes ex; not held while sending
	ex *proto.AntiEntropy
	// returned is when a member last came back (unix ns), for the exchange's
	// rounds; membership's callback must not wait for mu.
	returned atomic.Int64
}

// noteChange tells the exchange that the tree just brought changes.
func (a *antiEntropy) noteChange(now time.Time) {
	a.mu.Lock()
	a.ex.NoteChange(now)
	a.mu.Unlock()
}

func (a *antiEntropy) loop() {
	g := a.g
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
		a.mu.Lock()
		if r := a.returned.Load(); r != 0 {
			a.ex.NoteReturn(time.Unix(0, r))
		}
		due := a.ex.Due(now)
		base = a.ex.Period(now, g.cfg.AEInterval)
		a.mu.Unlock()
		if !due {
			continue
		}
		peers := g.members.alive(false)
		if len(peers) == 0 {
			continue
		}
		a.start(peers[rand.Intn(len(peers))].Name)
	}
}

// start opens an exchange with one member by sending our root digest.
func (a *antiEntropy) start(name string) {
	g := a.g
	if g.closed.Load() {
		return
	}
	a.mu.Lock()
	if a.ex.Start(time.Now(), name) {
		g.metrics.aeRounds.Inc()
	}
	out := a.ex.Outbox()
	a.mu.Unlock()
	a.send(out)
}

// receive hands one received message to the exchange and sends what it answers.
func (a *antiEntropy) receive(from string, m any) {
	g := a.g
	a.mu.Lock()
	err := a.ex.Receive(from, m)
	out := a.ex.Outbox()
	a.mu.Unlock()
	if err != nil {
		g.drop("malformed", err)
	}
	a.send(out)
}

func (a *antiEntropy) send(out []proto.AESend) {
	g := a.g
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
func (a *antiEntropy) pushPullState() []byte {
	g := a.g
	b, _ := json.Marshal(aeRoot{g.origin(), &proto.AERoot{Root: a.ex.Root()}})
	return b
}

func (a *antiEntropy) mergePushPull(buf []byte) {
	g := a.g
	var m aeRoot
	if err := json.Unmarshal(buf, &m); err != nil || m.AERoot == nil {
		g.drop("malformed", err)
		return
	}
	if m.From == "" || m.From == g.cfg.Name {
		return
	}
	g.members.learn(m.From, m.Addr)
	if a.ex.Root() != m.Root && !g.closed.Load() {
		go a.start(m.From)
	}
}

// onAEMsg drops a message whose body was missing (a nil embedded pointer).
func onAEMsg[T any](g *Gossip, from string, m *T) {
	if m == nil {
		g.drop("malformed", nil)
		return
	}
	g.ae.receive(from, m)
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
