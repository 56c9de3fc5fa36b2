package catalog

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
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
