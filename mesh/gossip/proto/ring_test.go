package proto

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%05d", i)
	}
	return out
}

// A ring is a spanning tree whose links both ends agree on, shallow (about
// log_fanout N) and with a bounded number of links per host.
func TestRingIsSpanningTree(t *testing.T) {
	for _, c := range []struct {
		n, fanout, maxDepth, maxLinks int
	}{
		{1, 8, 0, 0},
		{2, 8, 1, 1},
		{50, 8, 6, 20},
		// The root has about (fanout-1) children per level: 2x that bounds it.
		{1000, 8, 10, 2 * 7 * 4},
		{10000, 8, 12, 2 * 7 * 5},
		{10000, 4, 18, 2 * 3 * 7},
	} {
		members := names(c.n)
		r := NewRing(append(members, members[0]), c.fanout) // duplicates ignored
		if r.Len() != c.n {
			t.Fatalf("n=%d: %d laid out", c.n, r.Len())
		}
		edges, most := 0, 0
		adj := map[string]map[string]bool{}
		for _, m := range members {
			adj[m] = map[string]bool{}
			for _, l := range r.Links(m) {
				adj[m][l] = true
			}
			edges += len(adj[m])
			most = max(most, len(adj[m]))
		}
		for a, ls := range adj {
			for b := range ls {
				if !adj[b][a] {
					t.Fatalf("n=%d: %s links %s, not back", c.n, a, b)
				}
			}
		}
		if edges != 2*(c.n-1) {
			t.Fatalf("n=%d: %d link ends, a tree has %d", c.n, edges, 2*(c.n-1))
		}
		// Connected: a walk from one host reaches all.
		seen := map[string]bool{members[0]: true}
		for q := []string{members[0]}; len(q) > 0; q = q[1:] {
			for l := range adj[q[0]] {
				if !seen[l] {
					seen[l] = true
					q = append(q, l)
				}
			}
		}
		if len(seen) != c.n {
			t.Fatalf("n=%d: %d reachable", c.n, len(seen))
		}
		if d := r.Depth(); d > c.maxDepth || most > c.maxLinks {
			t.Errorf("n=%d fanout=%d: depth %d (max %d), most links %d (max %d)", c.n, c.fanout, d, c.maxDepth, most, c.maxLinks)
		}
		t.Logf("n=%d fanout=%d: depth %d, most links %d (log_fanout n = %.1f)", c.n, c.fanout, r.Depth(), most, math.Log(float64(c.n))/math.Log(float64(c.fanout)))
	}
}

// A member leaving or joining changes the links of a few hosts, not the layout.
func TestRingStableUnderChurn(t *testing.T) {
	members := names(2000)
	before := NewRing(members, 0)
	for _, gone := range []int{0, 17, 999, 1999} {
		rest := append(append([]string(nil), members[:gone]...), members[gone+1:]...)
		after := NewRing(rest, 0)
		changed := 0
		for _, m := range rest {
			if fmt.Sprint(before.Links(m)) != fmt.Sprint(after.Links(m)) {
				changed++
			}
		}
		// The leaver's parent and children, and whoever adopts them.
		if changed > 2*len(before.Links(members[gone]))+4 {
			t.Errorf("removing %s (%d links) changed the links of %d hosts", members[gone], len(before.Links(members[gone])), changed)
		}
	}
}

// With fixed links, a duplicate prunes nothing and a graft fetches without
// changing the tree.
func TestFixedLinks(t *testing.T) {
	now := time.Unix(0, 0)
	tr := NewTree(TreeConfig{Self: "a", Degree: 1})
	tr.SetLinks([]string{"b", "c", "a"})
	tr.AddPeers([]string{"d"})
	tr.Outbox()
	if e, l := tr.Neighbors(); fmt.Sprint(e, l) != "[b c] [d]" {
		t.Fatalf("eager %v lazy %v", e, l)
	}
	m := Message{Kind: KindGossip, ID: 1, Round: 1, Payload: []byte("x")}
	if _, ok := tr.Receive(now, "b", m); !ok {
		t.Fatal("first copy not delivered")
	}
	// A copy to the other tree link; the lazy one gets an announcement.
	out := tr.Outbox()
	if len(out) != 1 || out[0].To != "c" || out[0].Msg.Kind != KindGossip {
		t.Fatalf("forwarded %+v, want one copy to c", out)
	}
	tr.Tick(now.Add(time.Second))
	if out := tr.Outbox(); len(out) != 1 || out[0].To != "d" || out[0].Msg.Kind != KindIHave {
		t.Fatalf("sent %+v, want an announcement to d", out)
	}
	for _, from := range []string{"c", "d"} {
		if _, ok := tr.Receive(now, from, m); ok {
			t.Fatalf("duplicate from %s delivered", from)
		}
	}
	if out := tr.Outbox(); len(out) != 0 || tr.Stats.Prunes != 0 {
		t.Fatalf("duplicate answered with %+v (prunes %d)", out, tr.Stats.Prunes)
	}
	// d announces an id we lack; after the timeout we fetch it from d, and d stays lazy.
	tr.Receive(now, "d", Message{Kind: KindIHave, IDs: []uint64{2}})
	tr.Tick(now.Add(2 * time.Second))
	out = tr.Outbox()
	if len(out) != 1 || out[0].To != "d" || out[0].Msg.Kind != KindGraft {
		t.Fatalf("sent %+v, want a graft to d", out)
	}
	if e, l := tr.Neighbors(); fmt.Sprint(e, l) != "[b c] [d]" {
		t.Fatalf("after graft: eager %v lazy %v", e, l)
	}
	// A new layout moves links; a picked neighbor dropped from the tree stays lazy.
	tr.SetLinks([]string{"c", "d"})
	if e, l := tr.Neighbors(); fmt.Sprint(e, l) != "[c d] []" {
		t.Fatalf("relaid: eager %v lazy %v", e, l)
	}
}
