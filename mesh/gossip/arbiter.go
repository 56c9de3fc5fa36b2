package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quorum"
)

// Named creates: a name that must be unique in the cluster (an org, a network and its
// id, an app, a DNS record) is reserved with a small deterministic set of arbiter
// hosts before the record is written, instead of a confirmation round with every
// member. The arbiters of a name are the ArbiterCount live hosts with the highest
// hash of (name, host) (rendezvous hashing), so every host computes the same set
// without coordination and the set moves little when hosts come and go.
//
// An arbiter grants a name to one claimant at a time (first come) and refuses it
// while its catalog holds a live record with another identity. A claimant writes
// its record only with grants from a majority of the arbiters of every name it
// takes. Two majorities of one set share an arbiter, so two concurrent creates of
// a name never both succeed; the one that does not get a majority is told so (an
// error, never a silent success). Of two claimants that split the votes, the one
// that loses the catalog's merge order gives up and releases its grants, and the
// other retries, so concurrent creates end with one success, not with none.
//
// Arbiters are chosen among hosts membership reports alive. When fewer than a
// majority answer (a partition, most arbiters down) Claim says so and the caller
// may write anyway, as before arbiters existed: the catalog's merge order then picks
// one winner everywhere once the hosts meet again, and that resolution is logged and
// counted (availability over a refusal while partitioned).

// ArbiterCount is how many hosts arbitrate each name.
const ArbiterCount = 5

// grantTTL bounds how long a grant outlives a claimant that crashed between its
// claim and its write; a written record takes over from the grant long before.
const grantTTL = 30 * time.Second

const (
	opClaim   = "claim"
	opRelease = "claim.release"
)

// ErrClaimConflict means another create holds or won the name.
var ErrClaimConflict = errors.New("name claimed concurrently by another host")

// ErrNoQuorum means a majority of the name's arbiters could not be reached.
var ErrNoQuorum = errors.New("a majority of the name's arbiter hosts did not answer")

type claimant struct {
	Host    string        `json:"host"`
	Gen     uint32        `json:"gen"`
	Created catalog.Stamp `json:"created"`
}

type claimRequest struct {
	Keys   []string        `json:"keys"`
	Holder claimant        `json:"holder"`
	Record *catalog.Record `json:"record"`
}

type claimReply struct {
	Granted bool              `json:"granted"`
	Holder  *claimant         `json:"holder,omitempty"` // who holds it when refused
	Records []*catalog.Record `json:"records,omitempty"`
}

type grant struct {
	holder  claimant
	id      catalog.ID
	expires time.Time
}

// arbiter is one host's grant table, and (as a claimant) what it learnt of other
// arbiters' speed.
type arbiter struct {
	mu     sync.Mutex
	grants map[string]grant
	slow   *quorum.Slow
}

// Arbiters that failed to answer, or took longer than slowArbiter, are asked only
// when the others cannot make a majority, for slowFor.
const (
	slowArbiter = 500 * time.Millisecond
	slowFor     = time.Minute
)

// claimKeys are the unique names a record takes.
func claimKeys(r *catalog.Record) []string {
	keys := []string{"id/" + r.ID().String()}
	if r.Network != nil {
		keys = append(keys, fmt.Sprintf("network-id/%08x", r.Network.ID))
	}
	return keys
}

// Arbiters returns the arbiter hosts of key among the given hosts (sorted result).
func Arbiters(key string, hosts []string) []string {
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, 0, len(hosts))
	for _, h := range hosts {
		f := fnv.New64a()
		f.Write([]byte(key))
		f.Write([]byte{0})
		f.Write([]byte(h))
		s = append(s, scored{h, f.Sum64()})
	}
	sort.Slice(s, func(i, j int) bool {
		return s[i].score > s[j].score || s[i].score == s[j].score && s[i].name < s[j].name
	})
	out := make([]string, 0, ArbiterCount)
	for _, x := range s[:min(ArbiterCount, len(s))] {
		out = append(out, x.name)
	}
	sort.Strings(out)
	return out
}

// Claim reserves the names a fresh record takes with a majority of their arbiters.
// It returns nil when the caller may write r; ErrClaimConflict (wrapped) when
// another create holds or won a name; ErrNoQuorum when too few arbiters answered.
func (g *Gossip) Claim(ctx context.Context, r *catalog.Record) error {
	var last error
	for attempt := 0; attempt < 6; attempt++ {
		err, retry := g.claimOnce(ctx, r)
		if err == nil || !retry {
			return err
		}
		last = err
		// Votes were split with a claimant we beat; it gives up when it sees us.
		select {
		case <-ctx.Done():
			return last
		case <-time.After(time.Duration(10+rand.Intn(40)*(attempt+1)) * time.Millisecond):
		}
	}
	return last
}

func (g *Gossip) claimOnce(ctx context.Context, r *catalog.Record) (err error, retry bool) {
	hosts := g.aliveNames(true)
	arbiters := map[string][]string{}
	for _, key := range claimKeys(r) {
		arbiters[key] = Arbiters(key, hosts)
	}
	c := claimRound{
		me: claimant{Host: g.cfg.Name, Gen: r.Gen, Created: r.Created}, r: r, arbiters: arbiters,
		slow: g.arb.slow, timeout: g.cfg.RPCTimeout, log: g.log,
		ask: func(ctx context.Context, key, h string, req claimRequest) (claimReply, error) {
			if h == g.cfg.Name {
				return g.arbitrate(req), nil
			}
			var rep claimReply
			err := g.Call(ctx, h, opClaim, req, &rep)
			return rep, err
		},
		release: func(key, h string, req claimRequest) {
			if h == g.cfg.Name {
				g.release(req)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := g.Call(ctx, h, opRelease, req, nil); err != nil {
				// The grant expires by itself (grantTTL); until then it only delays
				// another claimant of the same name.
				g.log.Debug("claim release", "key", key, "arbiter", h, "err", err)
			}
		},
		learn: func(x *catalog.Record) bool {
			if x == nil || x.Validate() != nil {
				g.drop("invalid_record", nil)
				return false
			}
			g.merge([]*catalog.Record{x})
			return true
		},
	}
	return c.run(ctx)
}

// claimRound is one attempt to reserve a record's names with their arbiters. It
// needs only ask/release/learn, so it runs against fake arbiters in tests. Each
// name is decided by a majority of its arbiters (quorum.Need): the round returns as
// soon as every name has one, and grants that arrive after it gave up are released.
type claimRound struct {
	me       claimant
	r        *catalog.Record
	arbiters map[string][]string // name → its arbiter hosts
	slow     *quorum.Slow
	timeout  time.Duration
	log      *slog.Logger
	ask      func(ctx context.Context, key, host string, req claimRequest) (claimReply, error)
	release  func(key, host string, req claimRequest)
	learn    func(*catalog.Record) bool // merges a record an arbiter handed over; false if invalid
}

func (c claimRound) run(ctx context.Context) (err error, retry bool) {
	r, me := c.r, c.me
	type keyed struct {
		key string
		res []quorum.Result[claimReply]
	}
	// Grants that come in after the decision: kept if the claim won, released if not.
	decided := make(chan struct{})
	won := false
	late := func(key string) func(quorum.Result[claimReply]) {
		return func(v quorum.Result[claimReply]) {
			<-decided
			if v.Err == nil && v.Value.Granted && !won {
				c.release(key, v.Host, claimRequest{Keys: []string{key}, Holder: me})
			}
		}
	}
	results := make(chan keyed, len(c.arbiters))
	for key, hosts := range c.arbiters {
		go func() {
			req := claimRequest{Keys: []string{key}, Holder: me, Record: r}
			res := quorum.Poll(ctx, hosts, quorum.Need(len(hosts)), c.slow, c.timeout,
				func(ctx context.Context, h string) (claimReply, error) { return c.ask(ctx, key, h, req) },
				func(rep claimReply, err error) bool { return err == nil && rep.Granted },
				late(key))
			results <- keyed{key, res}
		}()
	}
	granted := map[string]int{}
	type granter struct{ key, host string }
	var granters []granter
	var conflict *claimant
	lose := false
	for range c.arbiters {
		kr := <-results
		for _, v := range kr.res {
			if v.Err != nil {
				c.log.Debug("claim", "key", kr.key, "arbiter", v.Host, "err", v.Err)
				continue
			}
			for _, x := range v.Value.Records {
				if !c.learn(x) {
					continue
				}
				if x.ID() == r.ID() && !x.Deleted && !x.SameIdentity(r) && x.Gen >= r.Gen {
					lose = true // the name exists (written by a claimant that won)
				}
			}
			if v.Value.Granted {
				granted[kr.key]++
				granters = append(granters, granter{kr.key, v.Host})
				continue
			}
			if h := v.Value.Holder; h != nil {
				conflict = h
				other := &catalog.Record{Kind: r.Kind, Key: r.Key, Gen: h.Gen, Created: h.Created, Version: h.Created}
				if other.Wins(&catalog.Record{Kind: r.Kind, Key: r.Key, Gen: me.Gen, Created: me.Created, Version: me.Created}) {
					lose = true
				}
			}
		}
	}
	ok := true
	for key, hosts := range c.arbiters {
		if granted[key] < quorum.Need(len(hosts)) {
			ok = false
		}
	}
	won = ok && !lose
	close(decided)
	if won {
		return nil, false
	}
	// Give back what we hold so the other claimant can finish.
	for _, v := range granters {
		go c.release(v.key, v.host, claimRequest{Keys: []string{v.key}, Holder: me})
	}
	switch {
	case lose:
		return fmt.Errorf("%w (%s)", ErrClaimConflict, holderName(conflict)), false
	case conflict != nil:
		return fmt.Errorf("%w (%s)", ErrClaimConflict, holderName(conflict)), true
	default:
		return ErrNoQuorum, false
	}
}

func holderName(c *claimant) string {
	if c == nil {
		return "already exists"
	}
	return "held by " + c.Host
}

// arbitrate decides one claim on this host.
func (g *Gossip) arbitrate(req claimRequest) claimReply {
	if req.Record == nil || req.Record.Validate() != nil || len(req.Keys) != 1 {
		return claimReply{}
	}
	r := req.Record
	id := r.ID()
	// A live record with another identity already has the name (and the claim is
	// not a new generation replacing it, as an ALIAS switch is): refuse, and hand it
	// over so the claimant learns of it.
	var existing []*catalog.Record
	if cur := g.cat.Get(id); cur != nil && !cur.Deleted && !cur.SameIdentity(r) && cur.Gen >= r.Gen {
		existing = append(existing, cur)
	}
	if r.Network != nil {
		for _, k := range g.cat.NetworkIDClaims(r.Network.ID) {
			if o := g.cat.Live(catalog.ID{Kind: catalog.KindNetwork, Key: k}); o != nil && k != r.Key {
				existing = append(existing, o)
			}
		}
	}
	if len(existing) > 0 {
		return claimReply{Records: existing}
	}
	now := time.Now()
	key := req.Keys[0]
	g.arb.mu.Lock()
	defer g.arb.mu.Unlock()
	if cur, ok := g.arb.grants[key]; ok && cur.holder != req.Holder && now.Before(cur.expires) && !g.released(cur) {
		h := cur.holder
		return claimReply{Holder: &h}
	}
	if len(g.arb.grants) > 4096 {
		for k, gr := range g.arb.grants {
			if !now.Before(gr.expires) {
				delete(g.arb.grants, k)
			}
		}
	}
	g.arb.grants[key] = grant{holder: req.Holder, id: id, expires: now.Add(grantTTL)}
	return claimReply{Granted: true}
}

// released reports whether a grant has done its work: the catalog holds its record
// (or a later generation, or its tombstone), which protects the name from here on.
func (g *Gossip) released(gr grant) bool {
	cur := g.cat.Get(gr.id)
	return cur != nil && cur.Gen >= gr.holder.Gen
}

func (g *Gossip) release(req claimRequest) {
	if len(req.Keys) != 1 {
		return
	}
	g.arb.mu.Lock()
	if cur, ok := g.arb.grants[req.Keys[0]]; ok && cur.holder == req.Holder {
		delete(g.arb.grants, req.Keys[0])
	}
	g.arb.mu.Unlock()
}

func (g *Gossip) handleClaim(_ context.Context, _ string, body json.RawMessage) (any, error) {
	var req claimRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("bad claim request: %v", err)
	}
	return g.arbitrate(req), nil
}

func (g *Gossip) handleRelease(_ context.Context, _ string, body json.RawMessage) (any, error) {
	var req claimRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("bad release request: %v", err)
	}
	g.release(req)
	return nil, nil
}

const opWritten = "claim.written"

// Written hands a record that was just written under a claim to the arbiters of its
// names and waits (bounded by ctx) until they hold it: they protect the name with
// the record itself from then on, and in a cluster of up to ArbiterCount hosts
// every host has the record when the create returns (so a create on another host
// right after can use it). Arbiters remembered as slow or unreachable are not
// waited for (the broadcast tree carries the record to them, and to everyone
// else), unless a majority needs them: one bad link costs at most one RPC timeout,
// on the first create that meets it.
func (g *Gossip) Written(ctx context.Context, r *catalog.Record) {
	hosts := g.aliveNames(true)
	var wg sync.WaitGroup
	for _, key := range claimKeys(r) {
		arbs := Arbiters(key, hosts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fast := 0
			for _, h := range arbs {
				if !g.arb.slow.Is(h) {
					fast++
				}
			}
			quorum.Poll(ctx, arbs, max(quorum.Need(len(arbs)), fast), g.arb.slow, g.cfg.RPCTimeout,
				func(ctx context.Context, h string) (struct{}, error) {
					if h == g.cfg.Name {
						return struct{}{}, nil
					}
					// Portable: an arbiter of the previous release keeps fields it does not know.
					return struct{}{}, g.Call(ctx, h, opWritten, []*catalog.Record{r.Portable()}, nil)
				},
				func(_ struct{}, err error) bool { return err == nil },
				func(v quorum.Result[struct{}]) {
					if v.Err != nil {
						g.log.Debug("written", "arbiter", v.Host, "err", v.Err)
					}
				})
		}()
	}
	wg.Wait()
}

func (g *Gossip) handleWritten(_ context.Context, _ string, body json.RawMessage) (any, error) {
	rs, err := decodeRecords(body)
	if err != nil || len(rs) != 1 {
		return nil, fmt.Errorf("bad written request: %v", err)
	}
	g.merge(rs)
	return nil, nil
}
