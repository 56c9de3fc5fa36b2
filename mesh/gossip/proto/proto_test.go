package proto

import (
	"reflect"
	"testing"
	"time"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: KindGossip, ID: 42, Round: 3, Payload: []byte("records")},
		{Kind: KindIHave, IDs: []uint64{1, 2, 3}},
		{Kind: KindGraft, IDs: []uint64{9}},
		{Kind: KindPrune},
		{Kind: KindJoin, Payload: []byte("127.0.0.1:7946")},
	} {
		b := m.Append(nil)
		if len(b) != m.Size() {
			t.Errorf("%v: Size %d, encoded %d", m.Kind, m.Size(), len(b))
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%v: round trip gave %+v, %v", m.Kind, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {9}, {byte(KindGossip), 1, 2}, {byte(KindIHave), 0, 2, 1}, {byte(KindIHave), 0, 0}, {byte(KindPrune), 1}} {
		if _, err := Decode(bad); err != ErrMalformed {
			t.Errorf("Decode(%v) = %v, want ErrMalformed", bad, err)
		}
	}
}

// net delivers queued messages between trees instantly, dropping those for which
// drop returns true.
type net struct {
	trees map[string]*Tree
	got   map[string]int
	now   time.Time
}

func (n *net) pump(drop func(from string, s Send) bool) {
	for moved := true; moved; {
		moved = false
		for _, name := range sortedKeys(n.trees) {
			for _, s := range n.trees[name].Outbox() {
				moved = true
				if drop != nil && drop(name, s) {
					continue
				}
				if _, ok := n.trees[s.To].Receive(n.now, name, s.Msg); ok {
					n.got[s.To]++
				}
			}
		}
	}
}

func TestTreePrunesAndGrafts(t *testing.T) {
	n := &net{trees: map[string]*Tree{}, got: map[string]int{}, now: time.Unix(0, 0)}
	names := []string{"a", "b", "c", "d"}
	for i, name := range names {
		n.trees[name] = NewTree(TreeConfig{Self: name, Degree: 3, Seed: int64(i)})
	}
	for _, name := range names {
		n.trees[name].AddPeers(names)
	}
	n.pump(nil)
	// First broadcast floods the full mesh; duplicates prune it to a tree.
	n.trees["a"].Publish(n.now, []byte("one"))
	n.pump(nil)
	for _, name := range names[1:] {
		if n.got[name] != 1 {
			t.Fatalf("%s delivered %d times", name, n.got[name])
		}
	}
	eagerLinks := 0
	for _, tr := range n.trees {
		e, _ := tr.Neighbors()
		eagerLinks += len(e)
	}
	if eagerLinks != 2*(len(names)-1) {
		t.Fatalf("%d eager link ends after pruning, want a spanning tree (%d)", eagerLinks, 2*(len(names)-1))
	}
	// Lose every eager copy to d: the announcement from a lazy link makes d graft.
	n.trees["b"].Publish(n.now, []byte("two"))
	n.pump(func(from string, s Send) bool { return s.To == "d" && s.Msg.Kind == KindGossip })
	if n.got["d"] != 1 {
		t.Fatalf("d got the lost message already")
	}
	n.now = n.now.Add(time.Second)
	for _, tr := range n.trees {
		tr.Tick(n.now) // announcements
	}
	n.pump(nil)
	n.now = n.now.Add(time.Second)
	n.trees["d"].Tick(n.now) // graft
	n.pump(nil)
	if n.got["d"] != 2 || n.trees["d"].Stats.Grafts == 0 {
		t.Fatalf("d delivered %d, grafts %d", n.got["d"], n.trees["d"].Stats.Grafts)
	}
}
