package claim

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dogwood/dogwood/mesh/quorum"
	"github.com/dogwood/dogwood/mesh/record"
)

// round is one attempt to reserve a record's names with their arbiters. It
// needs only ask/release/learn, so it runs against fake arbiters in tests. Each
// name is decided by a majority of its arbiters (quorum.Need): the round returns as
// soon as every name has one, and grants that arrive after it gave up are released.
type round struct {
	me       claimant
	r        *record.Record
	arbiters map[string][]string // name → its arbiter hosts
	slow     *quorum.Slow
	timeout  time.Duration
	log      *slog.Logger
	ask      func(ctx context.Context, key, host string, req claimRequest) (claimReply, error)
	release  func(key, host string, req claimRequest)
	learn    func(*record.Record) bool // merges a record an arbiter handed over; false if invalid
}

func (c round) run(ctx context.Context) (err error, retry bool) {
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
				other := &record.Record{Kind: r.Kind, Key: r.Key, Gen: h.Gen, Created: h.Created, Version: h.Created}
				if other.Wins(&record.Record{Kind: r.Kind, Key: r.Key, Gen: me.Gen, Created: me.Created, Version: me.Created}) {
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
		return fmt.Errorf("%w (%s)", ErrConflict, holderName(conflict)), false
	case conflict != nil:
		return fmt.Errorf("%w (%s)", ErrConflict, holderName(conflict)), true
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
