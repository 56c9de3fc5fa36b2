package catalog

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMTableMatchesMap runs random puts, replaces and deletes against a map; small
// key spaces make probe chains wrap around the end of the slot slice.
func TestMTableMatchesMap(t *testing.T) {
	for _, keys := range []int{5, 50, 2000} {
		seed := uint64(keys)
		t.Logf("keys=%d seed=%d", keys, seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		hs := maphash.MakeSeed()
		var tab mtable
		want := map[string]*mentry{}
		for op := 0; op < 20000; op++ {
			k := fmt.Sprintf("%014x", rng.IntN(keys))
			if rng.IntN(3) == 0 {
				tab.del(hs, k)
				delete(want, k)
			} else {
				e := &mentry{}
				e.m.ID = k
				tab.put(hs, e)
				want[k] = e
			}
			if tab.n != len(want) {
				t.Fatalf("op %d: %d entries, want %d", op, tab.n, len(want))
			}
			if op%97 == 0 {
				for i := 0; i < keys; i++ {
					k := fmt.Sprintf("%014x", i)
					if got := tab.get(hs, k); got != want[k] {
						t.Fatalf("op %d: get %s = %p, want %p", op, k, got, want[k])
					}
				}
				seen := 0
				for _, e := range tab.slots {
					if e != nil {
						seen++
					}
				}
				if seen != len(want) {
					t.Fatalf("op %d: %d occupied slots, want %d", op, seen, len(want))
				}
			}
		}
	}
}

// TestMachineByRequest: a machine's client request id finds its current version,
// tombstone included, until the tombstone is collected.
func TestMachineByRequest(t *testing.T) {
	c := New("h")
	r := machineRec("00000000000001", "web", 0x18, 2, 0x10001, "h2", StateStarted, 1, false)
	r.Machine.RequestID = "req-1"
	c.Apply(r)
	if got := c.ByRequest(KindMachine, "req-1"); got == nil || got.Key != r.Key || got.Deleted {
		t.Fatalf("by request: %+v", got)
	}
	if c.ByRequest(KindMachine, "req-2") != nil || c.ByRequest(KindApp, "req-1") != nil {
		t.Fatal("unknown request id or other kind found a record")
	}
	up := *r
	up.Version = st(2, 2)
	up.Machine = r.Machine.WithState(StateStopped)
	c.Apply(&up)
	if got := c.ByRequest(KindMachine, "req-1"); got == nil || got.Machine.State != StateStopped {
		t.Fatalf("after update: %+v", got)
	}
	tomb := up
	tomb.Version, tomb.Deleted, tomb.DeletedAt = st(3, 2), true, 100
	c.Apply(&tomb)
	if got := c.ByRequest(KindMachine, "req-1"); got == nil || !got.Deleted {
		t.Fatalf("after delete: %+v", got)
	}
	c.SetHorizon(func() time.Time { return time.Unix(200, 0) })
	if ids := c.Collect(); len(ids) != 1 {
		t.Fatalf("collected %v", ids)
	}
	if got := c.ByRequest(KindMachine, "req-1"); got != nil {
		t.Fatalf("after collection: %+v", got)
	}
}

// TestInternerForgets: shared placements and attributes are dropped with the last
// record that uses them, so a catalog's churn does not accumulate them.
func TestInternerForgets(t *testing.T) {
	c := New("h")
	rs := decodedMachines(0, 3000)
	c.ApplyAll(rs)
	if len(c.intern.places.m) == 0 || len(c.intern.attrs.m) == 0 {
		t.Fatal("nothing interned")
	}
	var tombs []*Record
	for _, r := range rs {
		d := *r
		d.Version, d.Deleted, d.DeletedAt = Stamp{Clock: r.Version.Clock + 1, Node: r.Version.Node}, true, 100
		tombs = append(tombs, &d)
	}
	c.ApplyAll(tombs)
	c.SetHorizon(func() time.Time { return time.Unix(200, 0) })
	if ids := c.Collect(); len(ids) != len(rs) {
		t.Fatalf("collected %d of %d", len(ids), len(rs))
	}
	if len(c.intern.places.m) != 0 || len(c.intern.attrs.m) != 0 {
		t.Fatalf("%d placements and %d attribute sets left", len(c.intern.places.m), len(c.intern.attrs.m))
	}
	if live, tombstones := c.Len(); live[KindMachine] != 0 || tombstones != 0 {
		t.Fatalf("left: %v live, %d tombstones", live, tombstones)
	}
	for b := range c.machines {
		if c.machines[b].n != 0 {
			t.Fatalf("bucket %d holds %d machines", b, c.machines[b].n)
		}
	}
}
