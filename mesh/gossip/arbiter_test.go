package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quorum"
)

// Every host computes the same arbiters for a name whatever order it lists members
// in, and a host joining or leaving moves at most one arbiter.
func TestArbitersDeterministicAndStable(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	rev := []string{"h", "g", "f", "e", "d", "c", "b", "a"}
	for _, key := range []string{"id/org/acme", "id/app/web", "network-id/00c0ffee"} {
		got := Arbiters(key, hosts)
		if len(got) != ArbiterCount || !reflect.DeepEqual(got, Arbiters(key, rev)) {
			t.Fatalf("%s: %v vs %v", key, got, Arbiters(key, rev))
		}
		moved := 0
		for _, h := range Arbiters(key, append(hosts, "i")) {
			found := false
			for _, o := range got {
				found = found || o == h
			}
			if !found {
				moved++
			}
		}
		if moved > 1 {
			t.Fatalf("%s: a joining host moved %d arbiters", key, moved)
		}
	}
	if got := Arbiters("k", []string{"solo"}); !reflect.DeepEqual(got, []string{"solo"}) {
		t.Fatalf("one host: %v", got)
	}
}

// fakeArbiters are grant tables reached in process, some of them slow or silent.
type fakeArbiters struct {
	mu     sync.Mutex
	grants map[string]map[string]claimant // host → key → holder
	hang   map[string]bool
	asked  map[string]int
}

func newFakeArbiters(hosts ...string) *fakeArbiters {
	f := &fakeArbiters{grants: map[string]map[string]claimant{}, hang: map[string]bool{}, asked: map[string]int{}}
	for _, h := range hosts {
		f.grants[h] = map[string]claimant{}
	}
	return f
}

func (f *fakeArbiters) round(r *catalog.Record, me claimant, arbiters []string, slow *quorum.Slow) claimRound {
	keys := map[string][]string{}
	for _, k := range claimKeys(r) {
		keys[k] = arbiters
	}
	return claimRound{me: me, r: r, arbiters: keys, slow: slow, timeout: 2 * time.Second,
		log: slog.New(slog.DiscardHandler),
		ask: func(ctx context.Context, key, h string, req claimRequest) (claimReply, error) {
			f.mu.Lock()
			f.asked[h]++
			hang := f.hang[h]
			f.mu.Unlock()
			if hang {
				<-ctx.Done()
				return claimReply{}, ctx.Err()
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if cur, ok := f.grants[h][key]; ok && cur != req.Holder {
				return claimReply{Holder: &cur}, nil
			}
			f.grants[h][key] = req.Holder
			return claimReply{Granted: true}, nil
		},
		release: func(key, h string, req claimRequest) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.grants[h][key] == req.Holder {
				delete(f.grants[h], key)
			}
		},
		learn: func(*catalog.Record) bool { return true },
	}
}

func orgRecord(slug string, clock uint64, node uint32) (*catalog.Record, claimant) {
	st := catalog.Stamp{Clock: clock, Node: node}
	r := &catalog.Record{Kind: catalog.KindOrg, Key: slug, Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: slug}}
	return r, claimant{Host: fmt.Sprintf("h%d", node), Gen: 1, Created: st}
}

// TestClaimNeedsAMajority: a claim succeeds with grants from 3 of 5 arbiters and
// fails with 2 (the other 3 hold the name for another claimant, who wins it) —
// "a majority" read as anything less than 3 of 5 fails here.
func TestClaimNeedsAMajority(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		heldByOther int
		ok          bool
	}{{0, true}, {1, true}, {2, true}, {3, false}, {4, false}, {5, false}} {
		f := newFakeArbiters(hosts...)
		r, me := orgRecord("acme", 10, 1)
		_, other := orgRecord("acme", 50, 2) // newer: loses the merge order, so only the count decides
		for _, h := range hosts[:tc.heldByOther] {
			f.grants[h]["id/"+r.ID().String()] = other
		}
		err, _ := f.round(r, me, hosts, nil).run(context.Background())
		if (err == nil) != tc.ok {
			t.Errorf("%d of 5 arbiters held by another claimant: err %v, want ok=%v", tc.heldByOther, err, tc.ok)
		}
		if err != nil {
			// A failed claim gives its grants back.
			time.Sleep(10 * time.Millisecond)
			f.mu.Lock()
			for h, g := range f.grants {
				if g["id/"+r.ID().String()] == me {
					t.Errorf("%d held: %s still holds the failed claimant's grant", tc.heldByOther, h)
				}
			}
			f.mu.Unlock()
		}
	}
}

// TestConcurrentClaimsOneWinner: two claimants of one name race over five
// arbiters many times; never do both succeed.
func TestConcurrentClaimsOneWinner(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e"}
	for i := 0; i < 200; i++ {
		f := newFakeArbiters(hosts...)
		r1, c1 := orgRecord("acme", uint64(10+i%3), 1)
		r2, c2 := orgRecord("acme", 11, 2)
		var wg sync.WaitGroup
		var e1, e2 error
		wg.Add(2)
		go func() { defer wg.Done(); e1, _ = f.round(r1, c1, hosts, nil).run(context.Background()) }()
		go func() { defer wg.Done(); e2, _ = f.round(r2, c2, hosts, nil).run(context.Background()) }()
		wg.Wait()
		if e1 == nil && e2 == nil {
			t.Fatalf("round %d: both claimants got the name", i)
		}
	}
}

// TestArbiterGrantsANameOnce: an arbiter grants a name to one claimant at a time.
func TestArbiterGrantsANameOnce(t *testing.T) {
	g := &Gossip{cat: catalog.New("a")}
	g.arb.grants = map[string]grant{}
	r1, c1 := orgRecord("acme", 10, 1)
	r2, c2 := orgRecord("acme", 11, 2)
	key := "id/" + r1.ID().String()
	if rep := g.arbitrate(claimRequest{Keys: []string{key}, Holder: c1, Record: r1}); !rep.Granted {
		t.Fatalf("first claim refused: %+v", rep)
	}
	rep := g.arbitrate(claimRequest{Keys: []string{key}, Holder: c2, Record: r2})
	if rep.Granted || rep.Holder == nil || *rep.Holder != c1 {
		t.Fatalf("second claimant of a granted name: %+v", rep)
	}
	if rep := g.arbitrate(claimRequest{Keys: []string{key}, Holder: c1, Record: r1}); !rep.Granted {
		t.Fatalf("the holder asking again: %+v", rep)
	}
	g.release(claimRequest{Keys: []string{key}, Holder: c1})
	if rep := g.arbitrate(claimRequest{Keys: []string{key}, Holder: c2, Record: r2}); !rep.Granted {
		t.Fatalf("after release: %+v", rep)
	}
}

// TestSlowArbiterCostsOneTimeout: one of five arbiters never answers. The first
// claim returns without waiting for it; after its timeout it is remembered, and the
// next claims do not ask it at all (a majority is there without it).
func TestSlowArbiterCostsOneTimeout(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e"}
	f := newFakeArbiters(hosts...)
	f.hang["c"] = true
	slow := quorum.NewSlow(time.Minute, 200*time.Millisecond, nil)
	var worst time.Duration
	for i := 0; i < 30; i++ {
		r, me := orgRecord(fmt.Sprintf("org%d", i), 10, 1)
		start := time.Now()
		if err, _ := f.round(r, me, hosts, slow).run(context.Background()); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		worst = max(worst, time.Since(start))
		if i == 0 {
			deadline := time.Now().Add(5 * time.Second)
			for !slow.Is("c") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if worst > time.Second {
		t.Errorf("a claim took %v with one silent arbiter", worst)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked["c"] != 1 {
		t.Errorf("the silent arbiter was asked %d times in 30 claims", f.asked["c"])
	}
}
