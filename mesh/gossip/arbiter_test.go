package gossip

import (
	"reflect"
	"testing"
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
