// Package claim owns the name-reservation protocol of named creates: which hosts
// arbitrate a name (rendezvous hashing over the live members), the arbiter's grant
// table, a claimant's round of asking a majority of arbiters, and handing a written
// record to the arbiters that granted its names.
//
// It must not write the catalog or disk itself and must not know the transport:
// it reads the catalog through Reader, hands records it learns to Merger, calls
// other hosts and serves their calls through Caller, and learns who is alive from
// Members. It imports record types (mesh/record), never the catalog. The messages it exchanges ("claim", "claim.release", "claim.written" and
// their JSON bodies) are read by hosts of earlier releases, which arbitrate for
// this one in a mixed cluster: their format must not change.
//
// Named creates: a name that must be unique in the cluster (an org, a network and its
// id, an app, a DNS record) is reserved with a small deterministic set of arbiter
// hosts before the record is written, instead of a confirmation round with every
// member. The arbiters of a name are the arbiterCount live hosts with the highest
// hash of (name, host), so every host computes the same set without coordination
// and the set moves little when hosts come and go.
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
// one winner everywhere once the hosts meet again (availability over a refusal
// while partitioned).
package claim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogwood/dogwood/mesh/quorum"
	"github.com/dogwood/dogwood/mesh/record"
)

// Caller calls other hosts and serves their calls (*gossip.Gossip). Handle is
// called from New, before any claim; handlers run on the caller's goroutines.
type Caller interface {
	Call(ctx context.Context, host, op string, req, resp any) error
	Handle(op string, h func(ctx context.Context, from string, body json.RawMessage) (any, error))
}

// Members lists the hosts membership reports alive or suspect, this host included
// (*gossip.Gossip). It must answer at once: it is called on every claim.
type Members interface {
	AliveNames() []string
}

// Reader is what an arbiter reads of its catalog (*catalog.Catalog); records it
// returns are not modified.
type Reader interface {
	Get(record.ID) *record.Record
	Live(record.ID) *record.Record
	NetworkIDClaims(id uint32) []string
}

// Merger takes valid records another host handed over (an arbiter's record that
// holds a name, a claimant's written record) the way records from gossip are
// taken. It is called from RPC handlers and claim rounds and must not block long.
type Merger interface {
	Merge([]*record.Record)
}

// Config is what a Claimer needs; zero Timeout, Logger and Now take defaults.
type Config struct {
	Self    string // this host's name, as Members lists it
	Caller  Caller
	Members Members
	Reader  Reader
	Merger  Merger
	// Timeout bounds each call to an arbiter (default 3s).
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// arbiterCount is how many hosts arbitrate each name.
const arbiterCount = 5

// grantTTL bounds how long a grant outlives a claimant that crashed between its
// claim and its write; a written record takes over from the grant long before.
const grantTTL = 30 * time.Second

// Arbiters that failed to answer, or took longer than slowArbiter, are asked only
// when the others cannot make a majority, for slowFor.
const (
	slowArbiter = 500 * time.Millisecond
	slowFor     = time.Minute
)

// ErrConflict means another create holds or won the name.
var ErrConflict = errors.New("name claimed concurrently by another host")

// ErrNoQuorum means a majority of the name's arbiters could not be reached.
var ErrNoQuorum = errors.New("a majority of the name's arbiter hosts did not answer")

// Claimer is one host's part in the protocol: a claimant for its own creates and an
// arbiter for others'. Safe for concurrent use; no lock is held across a call.
type Claimer struct {
	cfg Config
	arb *arbiter
	// slow is what this host, as a claimant, learnt of other arbiters' speed.
	slow *quorum.Slow
}

// New builds a Claimer and registers its handlers with cfg.Caller.
func New(cfg Config) *Claimer {
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Claimer{cfg: cfg, arb: newArbiter(cfg.Reader, cfg.Now), slow: quorum.NewSlow(slowFor, slowArbiter, nil)}
	cfg.Caller.Handle(opClaim, c.handleClaim)
	cfg.Caller.Handle(opRelease, c.handleRelease)
	cfg.Caller.Handle(opWritten, c.handleWritten)
	return c
}

// Claim reserves the names a fresh record takes with a majority of their arbiters.
// It returns nil when the caller may write r; ErrConflict (wrapped) when another
// create holds or won a name; ErrNoQuorum when too few arbiters answered.
func (c *Claimer) Claim(ctx context.Context, r *record.Record) error {
	var last error
	for attempt := 0; attempt < 6; attempt++ {
		err, retry := c.round(r).run(ctx)
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

// round is one attempt at r over the arbiters of its names among today's members.
func (c *Claimer) round(r *record.Record) round {
	hosts := c.cfg.Members.AliveNames()
	arbiters := map[string][]string{}
	for _, key := range claimKeys(r) {
		arbiters[key] = pickArbiters(key, hosts)
	}
	return round{
		me: claimant{Host: c.cfg.Self, Gen: r.Gen, Created: r.Created}, r: r, arbiters: arbiters,
		slow: c.slow, timeout: c.cfg.Timeout, log: c.cfg.Logger,
		ask: func(ctx context.Context, key, h string, req claimRequest) (claimReply, error) {
			if h == c.cfg.Self {
				return c.arb.arbitrate(req), nil
			}
			var rep claimReply
			err := c.cfg.Caller.Call(ctx, h, opClaim, req, &rep)
			return rep, err
		},
		release: func(key, h string, req claimRequest) {
			if h == c.cfg.Self {
				c.arb.release(req)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := c.cfg.Caller.Call(ctx, h, opRelease, req, nil); err != nil {
				// The grant expires by itself (grantTTL); until then it only delays
				// another claimant of the same name.
				c.cfg.Logger.Debug("claim release", "key", key, "arbiter", h, "err", err)
			}
		},
		learn: func(x *record.Record) bool {
			if x == nil || x.Validate() != nil {
				c.cfg.Logger.Debug("claim: an arbiter handed over an invalid record")
				return false
			}
			c.cfg.Merger.Merge([]*record.Record{x})
			return true
		},
	}
}

// Written hands a record that was just written under a claim to the arbiters of its
// names and waits (bounded by ctx) until they hold it: they protect the name with
// the record itself from then on, and in a cluster of up to arbiterCount hosts
// every host has the record when the create returns (so a create on another host
// right after can use it). Arbiters remembered as slow or unreachable are not
// waited for (the broadcast tree carries the record to them, and to everyone
// else), unless a majority needs them; and once a majority holds the record, the
// others are waited for only slowArbiter longer: one that takes more is slow by
// definition, is remembered as such when its answer comes, and gets the record
// anyway. So one bad link or one starved host costs at most one RPC timeout, on the
// first create that meets it, and usually not even that.
func (c *Claimer) Written(ctx context.Context, r *record.Record) {
	hosts := c.cfg.Members.AliveNames()
	var wg sync.WaitGroup
	for _, key := range claimKeys(r) {
		arbs := pickArbiters(key, hosts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fast := 0
			for _, h := range arbs {
				if !c.slow.Is(h) {
					fast++
				}
			}
			pctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var held atomic.Int32
			majority := int32(quorum.Need(len(arbs)))
			quorum.Poll(pctx, arbs, max(quorum.Need(len(arbs)), fast), c.slow, c.cfg.Timeout,
				func(ctx context.Context, h string) (struct{}, error) {
					err := error(nil)
					if h != c.cfg.Self {
						// Portable: an arbiter of the previous release keeps fields it does not know.
						err = c.cfg.Caller.Call(ctx, h, opWritten, []*record.Record{r.Portable()}, nil)
					}
					if err == nil && held.Add(1) == majority {
						time.AfterFunc(slowArbiter, cancel)
					}
					return struct{}{}, err
				},
				func(_ struct{}, err error) bool { return err == nil },
				func(v quorum.Result[struct{}]) {
					if v.Err != nil {
						c.cfg.Logger.Debug("written", "arbiter", v.Host, "err", v.Err)
					}
				})
		}()
	}
	wg.Wait()
}
