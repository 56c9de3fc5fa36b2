package gossip

import (
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// recordBatch bounds one records message so no single TCP message grows with the
// catalog.
const recordBatch = 500

func (g *Gossip) aeLoop() {
	defer g.wg.Done()
	for {
		// Jitter keeps hosts that started together from probing in lockstep.
		d := g.cfg.AEInterval/2 + time.Duration(rand.Int63n(int64(g.cfg.AEInterval)))
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(d):
		}
		peers := g.alive(false)
		if len(peers) == 0 {
			continue
		}
		g.startAE(peers[rand.Intn(len(peers))].Name)
	}
}

// aeDedupe is how long an exchange with one peer suppresses another: a rejoining
// host triggers several (join event, push/pull, the periodic loop) and each would
// resend the same missing records.
const aeDedupe = 2 * time.Second

// startAE opens an exchange with one member by sending our root digest.
func (g *Gossip) startAE(name string) {
	if g.closed.Load() {
		return
	}
	g.mu.Lock()
	if t, ok := g.aeStarted[name]; ok && time.Since(t) < aeDedupe {
		g.mu.Unlock()
		return
	}
	g.aeStarted[name] = time.Now()
	g.mu.Unlock()
	root, _ := g.cat.Digest()
	g.metrics.aeRounds.Inc()
	_ = g.sendTo(name, msgAERoot, aeRoot{origin: g.origin(), Root: root})
}

func (g *Gossip) onAERoot(m aeRoot) {
	root, buckets := g.cat.Digest()
	if root == m.Root || m.From == g.cfg.Name {
		return
	}
	_ = g.sendTo(m.From, msgAEBuckets, aeBuckets{origin: g.origin(), Buckets: buckets})
}

func (g *Gossip) onAEBuckets(m aeBuckets) {
	_, mine := g.cat.Digest()
	var diff []int
	for i := range mine {
		if mine[i] != m.Buckets[i] {
			diff = append(diff, i)
		}
	}
	if len(diff) == 0 {
		return
	}
	subs := g.cat.SubDigests(diff)
	enc := make([][]byte, len(subs))
	for i, s := range subs {
		enc[i] = make([]byte, 8*len(s))
		for j, v := range s {
			binary.BigEndian.PutUint64(enc[i][8*j:], v)
		}
	}
	_ = g.sendTo(m.From, msgAESubs, aeSubs{origin: g.origin(), Buckets: diff, Subs: enc})
}

// onAESubs narrows differing buckets to differing leaves and sends our headers there.
func (g *Gossip) onAESubs(m aeSubs) {
	if len(m.Subs) != len(m.Buckets) {
		g.drop("malformed", nil)
		return
	}
	mine := g.cat.SubDigests(m.Buckets)
	var leaves []int
	for i, b := range m.Buckets {
		if b < 0 || b >= catalog.Buckets || len(m.Subs[i]) != 8*catalog.SubBuckets {
			g.drop("malformed", nil)
			return
		}
		for j := 0; j < catalog.SubBuckets; j++ {
			if binary.BigEndian.Uint64(m.Subs[i][8*j:]) != mine[i][j] {
				leaves = append(leaves, b*catalog.SubBuckets+j)
			}
		}
	}
	if len(leaves) == 0 {
		return
	}
	_ = g.sendTo(m.From, msgAEHeaders, aeHeaders{origin: g.origin(), Leaves: leaves, Headers: g.cat.LeafHeaders(leaves)})
}

// onAEHeaders finishes the comparison: we know both sides' headers for the differing
// buckets, so we send what we have that wins and ask for what they have that wins.
func (g *Gossip) onAEHeaders(m aeHeaders) {
	mine := map[catalog.ID]catalog.Header{}
	for _, h := range g.cat.LeafHeaders(m.Leaves) {
		mine[h.ID()] = h
	}
	var want, give []catalog.ID
	for _, th := range m.Headers {
		if !th.Kind.Valid() {
			g.drop("invalid_header", nil)
			continue
		}
		id := th.ID()
		mh, ok := mine[id]
		delete(mine, id)
		switch {
		case !ok:
			want = append(want, id)
		case th.Record().Wins(mh.Record()):
			want = append(want, id)
		case mh.Record().Wins(th.Record()):
			give = append(give, id)
		}
	}
	for id := range mine {
		give = append(give, id)
	}
	if len(want) > 0 {
		_ = g.sendTo(m.From, msgAEWant, aeWant{origin: g.origin(), IDs: want})
	}
	g.sendRecords(m.From, give)
}

func (g *Gossip) onAEWant(m aeWant) { g.sendRecords(m.From, m.IDs) }

func (g *Gossip) sendRecords(to string, ids []catalog.ID) {
	for len(ids) > 0 {
		n := min(len(ids), recordBatch)
		rs := g.cat.Records(ids[:n])
		ids = ids[n:]
		if len(rs) == 0 {
			continue
		}
		if err := g.sendTo(to, msgRecords, rs); err != nil {
			return
		}
		g.metrics.aeRecords.Add(float64(len(rs)))
	}
}

// pushPullState is what memberlist's push/pull (on join and periodically) carries for
// us: only our digest root. It then starts a real anti-entropy exchange when roots
// differ, instead of shipping the whole catalog.
func (g *Gossip) pushPullState() []byte {
	root, _ := g.cat.Digest()
	b, _ := json.Marshal(aeRoot{origin: g.origin(), Root: root})
	return b
}

func (g *Gossip) mergePushPull(buf []byte) {
	var m aeRoot
	if err := json.Unmarshal(buf, &m); err != nil {
		g.drop("malformed", err)
		return
	}
	if m.From == "" || m.From == g.cfg.Name {
		return
	}
	g.learn(m.From, m.Addr)
	if root, _ := g.cat.Digest(); root != m.Root && !g.closed.Load() {
		go g.startAE(m.From)
	}
}
