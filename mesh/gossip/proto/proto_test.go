package proto

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
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
		{Kind: KindBatch, Batch: []Message{
			{Kind: KindGossip, ID: 1, Round: 300, Payload: []byte("one")},
			{Kind: KindGossip, ID: 2, Round: 1, Payload: []byte{}},
		}},
		{Kind: KindPack, Batch: []Message{
			{Kind: KindGossip, ID: ContentID([]byte("one")), Round: 300, Payload: []byte("one")},
			{Kind: KindGossip, ID: ContentID([]byte("two")), Round: 1, Payload: []byte("two")},
		}},
		{Kind: KindIHaveShort, IDs: []uint64{1, 0xabcdef, 0xffffff}},
		{Kind: KindGraftShort, IDs: []uint64{7}},
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
	for _, bad := range [][]byte{nil, {0}, {9}, {byte(KindGossip), 1, 2}, {byte(KindIHave), 0, 2, 1}, {byte(KindIHave), 0, 0}, {byte(KindPrune), 1},
		{byte(KindBatch)}, {byte(KindBatch), 0}, {byte(KindBatch), 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 5, 'x'},
		{byte(KindBatch), 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 'x', 'y'}, {byte(KindBatch), 200, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0}} {
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
	// wire, when set, sends every message through its encoding and splits packs
	// and batches as the network layer does; a message that does not decode fails it.
	wire *testing.T
}

func (n *net) pump(drop func(from string, s Send) bool) {
	for moved := true; moved; {
		moved = false
		for _, name := range slices.Sorted(maps.Keys(n.trees)) {
			for _, s := range n.trees[name].Outbox() {
				moved = true
				if drop != nil && drop(name, s) {
					continue
				}
				msgs := []Message{s.Msg}
				if n.wire != nil {
					m, err := Decode(s.Msg.Append(nil))
					if err != nil {
						n.wire.Fatalf("%v from %s: %v", s.Msg.Kind, name, err)
					}
					msgs = m.Entries()
				}
				for _, m := range msgs {
					if _, ok := n.trees[s.To].Receive(n.now, name, m); ok {
						n.got[s.To]++
					}
				}
			}
		}
	}
}

// With EagerInterval, copies to one neighbor wait and leave as one batch, split
// before a batch outgrows a packet.
func TestEagerBatching(t *testing.T) {
	now := time.Unix(0, 0)
	tr := NewTree(TreeConfig{Self: "a", EagerInterval: 20 * time.Millisecond})
	tr.SetLinks([]string{"b"})
	tr.Publish(now, []byte("lone"))
	if out := tr.Outbox(); len(out) != 1 || out[0].Msg.Kind != KindGossip {
		t.Fatalf("a change on a quiet link waited: %+v", out)
	}
	for i := 1; i <= 3; i++ {
		tr.Publish(now.Add(time.Duration(i)*time.Millisecond), []byte("change"))
	}
	if out := tr.Outbox(); len(out) != 0 {
		t.Fatalf("sent before the interval: %+v", out)
	}
	if d := tr.Deadline(); !d.Equal(now.Add(20 * time.Millisecond)) {
		t.Fatalf("deadline %v", d)
	}
	tr.Tick(now.Add(20 * time.Millisecond))
	out := tr.Outbox()
	if len(out) != 1 || out[0].To != "b" || out[0].Msg.Kind != KindBatch || len(out[0].Msg.Batch) != 3 {
		t.Fatalf("sent %+v, want one batch of 3 to b", out)
	}
	// Four made at once (a pack that arrived, forwarded entry by entry): the first
	// leaves at once (19 ms after the last change, on a link that carries no
	// stream) and the second joins it, up to what a packet holds; the other two
	// wait together for the interval.
	big := make([]byte, 400)
	for i := range 4 {
		tr.Publish(now.Add(22*time.Millisecond), append(big[:len(big):len(big)], byte(i)))
	}
	out = tr.Outbox()
	if len(out) != 1 || out[0].Msg.Kind != KindBatch || len(out[0].Msg.Batch) != 2 || out[0].Msg.Size() > batchLimit {
		t.Fatalf("sent %+v, want a batch of 2 at once", out)
	}
	tr.Tick(now.Add(40 * time.Millisecond))
	if out = tr.Outbox(); len(out) != 1 || len(out[0].Msg.Batch) != 2 {
		t.Fatalf("sent %+v at the interval, want the other 2", out)
	}
}

// Copies wait for company only on a link that carries a stream: changes 40 ms
// apart each go at once although the link sent within the 70 ms interval; changes
// 10 ms apart (100/s) leave in batches, one packet per interval.
func TestEagerBatchingOnlyStreams(t *testing.T) {
	now := time.Unix(0, 0)
	tr := NewTree(TreeConfig{Self: "a", EagerInterval: 70 * time.Millisecond})
	tr.SetLinks([]string{"b"})
	at := now
	for i := range 20 {
		tr.Publish(at, []byte("change"))
		if out := tr.Outbox(); len(out) != 1 || out[0].Msg.Kind != KindGossip {
			t.Fatalf("change %d, 40 ms after the last, waited: %+v", i, out)
		}
		at = at.Add(40 * time.Millisecond)
	}
	packets, copies := 0, 0
	count := func(out []Send) {
		for _, s := range out {
			packets++
			copies += max(1, len(s.Msg.Batch))
		}
	}
	for i := range 100 {
		at = at.Add(10 * time.Millisecond)
		if d := tr.Deadline(); !d.IsZero() && !at.Before(d) {
			tr.Tick(d)
			count(tr.Outbox())
		}
		tr.Publish(at, []byte(fmt.Sprint("stream", i)))
		count(tr.Outbox())
	}
	tr.Tick(at.Add(time.Second))
	count(tr.Outbox())
	// 1 s at 100/s with a 70 ms interval: about 15 packets, a few more while the
	// link's gap estimate comes down from the quiet spell.
	if copies != 100 || packets > 20 {
		t.Fatalf("a stream of 100 changes 10 ms apart left as %d copies in %d packets, want batches", copies, packets)
	}
}

// Announcements: after a quarter interval on a quiet link, then per LazyInterval; a
// GraftWait shorter than GraftTimeout asks for a missing id sooner.
func TestLazyBatchingAndGraftWait(t *testing.T) {
	now := time.Unix(0, 0)
	tr := NewTree(TreeConfig{Self: "a", LazyInterval: 200 * time.Millisecond, GraftTimeout: 300 * time.Millisecond,
		GraftWait: func(p string) time.Duration {
			if p == "fast" {
				return 10 * time.Millisecond
			}
			return 0
		}})
	tr.SetLinks(nil)
	tr.Receive(now, "d", Message{Kind: KindJoin})
	for i := range 3 {
		tr.Publish(now.Add(time.Duration(i)*time.Millisecond), []byte("x"))
	}
	if out := tr.Outbox(); len(out) != 0 {
		t.Fatalf("announced at once: %+v", out)
	}
	if d := tr.Deadline(); !d.Equal(now.Add(50 * time.Millisecond)) {
		t.Fatalf("deadline %v, want a quarter interval on a quiet link", d)
	}
	tr.Tick(now.Add(50 * time.Millisecond))
	if out := tr.Outbox(); len(out) != 1 || len(out[0].Msg.IDs) != 3 {
		t.Fatalf("sent %+v, want the three ids in one announcement", out)
	}
	tr.Publish(now.Add(60*time.Millisecond), []byte("y"))
	if d := tr.Deadline(); !d.Equal(now.Add(250 * time.Millisecond)) {
		t.Fatalf("deadline %v, want a full interval after the last announcement on a busy link", d)
	}
	tr.Tick(now.Add(250 * time.Millisecond))
	tr.Outbox()
	for _, c := range []struct {
		from string
		wait time.Duration
	}{{"fast", 10 * time.Millisecond}, {"slow", 300 * time.Millisecond}} {
		id := uint64(c.from[0])
		tr.Receive(now, c.from, Message{Kind: KindIHave, IDs: []uint64{id}})
		tr.Tick(now.Add(c.wait - time.Millisecond))
		if out := tr.Outbox(); len(out) != 0 {
			t.Fatalf("%s: grafted before %v: %+v", c.from, c.wait, out)
		}
		tr.Tick(now.Add(c.wait))
		if out := tr.Outbox(); len(out) != 1 || out[0].Msg.Kind != KindGraft || out[0].To != c.from {
			t.Fatalf("%s: sent %+v, want a graft after %v", c.from, out, c.wait)
		}
	}
}

func TestTreePrunesAndGrafts(t *testing.T) {
	n := &net{trees: map[string]*Tree{}, got: map[string]int{}, now: time.Unix(0, 0)}
	names := []string{"a", "b", "c", "d"}
	for i, name := range names {
		n.trees[name] = NewTree(TreeConfig{Self: name, Degree: 3, Seed: int64(i), EagerInterval: -1})
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

func TestCompactMalformed(t *testing.T) {
	// A short announcement carries 3 bytes of each id.
	got, _ := Decode((&Message{Kind: KindIHaveShort, IDs: []uint64{0x1122334455667788}}).Append(nil))
	if got.IDs[0] != 0x667788 {
		t.Errorf("short id %#x, want 0x667788", got.IDs[0])
	}
	for _, bad := range [][]byte{{byte(KindPack)}, {byte(KindPack), 0}, {byte(KindPack), 1, 0, 0}, {byte(KindPack), 1, 0, 5, 'x'},
		{byte(KindPack), 1, 0, 1, 'x', 'y'}, {byte(KindIHaveShort), 1, 1, 2}, {byte(KindIHaveShort), 0}, {byte(KindGraftShort), 2, 1, 2, 3}} {
		if _, err := Decode(bad); err != ErrMalformed {
			t.Errorf("Decode(%v) = %v, want ErrMalformed", bad, err)
		}
	}
}

// In compact mode a change travels in a pack without its id (the receiver derives
// it), and a host whose copy was lost hears of it by a 3-byte digest and fetches it
// by that digest.
func TestCompactRepair(t *testing.T) {
	n := &net{trees: map[string]*Tree{}, got: map[string]int{}, now: time.Unix(0, 0), wire: t}
	for _, name := range []string{"a", "b", "c"} {
		n.trees[name] = NewTree(TreeConfig{Self: name, Compact: true, Degree: 1})
	}
	// A line a-b-c is the tree; c picks a as its lazy neighbor.
	n.trees["a"].SetLinks([]string{"b"})
	n.trees["b"].SetLinks([]string{"a", "c"})
	n.trees["c"].SetLinks([]string{"b"})
	n.trees["c"].AddPeers([]string{"a"})
	n.pump(nil)
	var kinds []Kind
	payload := []byte("a change")
	id := n.trees["a"].Publish(n.now, payload)
	if id != ContentID(payload) {
		t.Fatalf("compact id %x, want the content id", id)
	}
	n.pump(func(from string, s Send) bool {
		kinds = append(kinds, s.Msg.Kind)
		return from == "b" && s.To == "c" // the tree copy to c is lost
	})
	if n.got["b"] != 1 || n.got["c"] != 0 || !slices.Contains(kinds, KindPack) {
		t.Fatalf("delivered %v with kinds %v", n.got, kinds)
	}
	kinds = nil
	for i := 0; i < 20 && n.got["c"] == 0; i++ {
		n.now = n.now.Add(100 * time.Millisecond)
		for _, tr := range n.trees {
			tr.Tick(n.now)
		}
		n.pump(func(_ string, s Send) bool { kinds = append(kinds, s.Msg.Kind); return false })
	}
	if n.got["c"] != 1 {
		t.Fatalf("c never repaired; messages %v", kinds)
	}
	for _, k := range []Kind{KindIHaveShort, KindGraftShort, KindPack} {
		if !slices.Contains(kinds, k) {
			t.Errorf("repair did not use %v: %v", k, kinds)
		}
	}
	for _, k := range kinds {
		if k == KindIHave || k == KindGraft || k == KindGossip || k == KindBatch {
			t.Errorf("compact tree sent %v", k)
		}
	}
}

// A pack that arrives is forwarded in one packet per link, at once: its entries
// reach Receive one by one, but the copies they make join the message already
// leaving for each link until the caller takes the Outbox. Ids asked for in one
// graft are answered in one message, too.
func TestForwardsAPackWhole(t *testing.T) {
	now := time.Unix(0, 0)
	tr := NewTree(TreeConfig{Self: "b", Compact: true})
	tr.SetLinks([]string{"a", "c", "d"})
	var pack Message
	for i := range 5 {
		pack.Batch = append(pack.Batch, Message{Kind: KindGossip, Round: 1, Payload: []byte(fmt.Sprint("change ", i))})
	}
	// The link to c sent a moment ago, so copies for it would wait for company.
	tr.Receive(now, "a", Message{Kind: KindGossip, ID: 1, Payload: []byte("earlier")})
	tr.Outbox()
	now = now.Add(30 * time.Millisecond)
	wire, err := Decode((&Message{Kind: KindPack, Batch: pack.Batch}).Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range wire.Entries() {
		tr.Receive(now, "a", m)
	}
	out := tr.Outbox()
	got := map[string]int{}
	for _, s := range out {
		if s.Msg.Kind != KindPack {
			t.Fatalf("sent %v to %s", s.Msg.Kind, s.To)
		}
		got[s.To] += len(s.Msg.Batch)
	}
	if len(out) != 2 || got["c"] != 5 || got["d"] != 5 {
		t.Fatalf("forwarded a pack of 5 as %d messages (%v), want one pack of 5 to c and to d", len(out), got)
	}
	var ids []uint64
	for _, m := range wire.Batch[:3] {
		ids = append(ids, m.ID)
	}
	tr.Receive(now, "d", Message{Kind: KindGraftShort, IDs: ids})
	if out := tr.Outbox(); len(out) != 1 || len(out[0].Msg.Batch) != 3 {
		t.Fatalf("answered a graft of 3 with %+v, want one pack of 3", out)
	}
}

// On a lazy link, the first end to announce an id speaks for both: the other end
// drops it from its own queue if it has it, and does not announce it back when it
// arrives after the announcement.
func TestAnnouncesAnIdOncePerLazyLink(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewTree(TreeConfig{Self: "b", Compact: true})
	b.SetLinks([]string{"p"})
	b.Receive(now, "a", Message{Kind: KindJoin}) // a is a lazy neighbor
	change := func(s string) Message {
		return Message{Kind: KindGossip, ID: ContentID([]byte(s)), Round: 1, Payload: []byte(s)}
	}
	x, y, z := change("x"), change("y"), change("z")
	// x and y arrive from the tree and wait in b's announcements to a.
	b.Receive(now, "p", x)
	b.Receive(now, "p", y)
	b.Outbox()
	// a announces x (it has it) and z, which b has not got yet.
	b.Receive(now.Add(10*time.Millisecond), "a", Message{Kind: KindIHaveShort, IDs: []uint64{x.ID, z.ID}})
	b.Receive(now.Add(20*time.Millisecond), "p", z)
	b.Tick(now.Add(time.Second))
	var announced []uint64
	for _, s := range b.Outbox() {
		if s.To == "a" && s.Msg.Kind == KindIHaveShort {
			announced = append(announced, s.Msg.IDs...)
		}
	}
	if len(announced) != 1 || announced[0] != y.ID {
		t.Fatalf("b announced %x to a, want only y (%x): a announced x and z itself", announced, y.ID)
	}
}

// A missing id is asked of its first announcer; when no answer comes within
// GraftTimeout (the graft or the answer was lost), of every announcer at once, for
// graftRounds rounds in all, and only then left to anti-entropy.
func TestGraftRoundsAskEveryAnnouncer(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewTree(TreeConfig{Self: "b", Compact: true, GraftTimeout: 300 * time.Millisecond})
	b.SetLinks([]string{"p"})
	id := ContentID([]byte("lost"))
	b.Receive(now, "a1", Message{Kind: KindIHaveShort, IDs: []uint64{id}})
	b.Receive(now.Add(10*time.Millisecond), "a2", Message{Kind: KindIHaveShort, IDs: []uint64{id}})
	b.Receive(now.Add(20*time.Millisecond), "a2", Message{Kind: KindIHaveShort, IDs: []uint64{id}})
	asked := func(at time.Duration) []string {
		b.Tick(now.Add(at))
		var to []string
		for _, s := range b.Outbox() {
			if s.Msg.Kind == KindGraftShort {
				to = append(to, s.To)
			}
		}
		return to
	}
	if to := asked(300 * time.Millisecond); !slices.Equal(to, []string{"a1"}) {
		t.Fatalf("first round asked %v, want a1", to)
	}
	for round := 2; round <= graftRounds; round++ {
		if to := asked(time.Duration(round) * 300 * time.Millisecond); !slices.Equal(to, []string{"a1", "a2"}) {
			t.Fatalf("round %d asked %v, want a1 and a2 (once each)", round, to)
		}
	}
	if to := asked(time.Duration(graftRounds+1) * 300 * time.Millisecond); len(to) != 0 || b.Stats.Missed != 1 {
		t.Fatalf("after %d rounds asked %v again, missed %d; want it left to anti-entropy", graftRounds, to, b.Stats.Missed)
	}
	// An announcer that leaves is not asked.
	b.Receive(now, "a1", Message{Kind: KindIHaveShort, IDs: []uint64{id + 1}})
	b.Receive(now, "a2", Message{Kind: KindIHaveShort, IDs: []uint64{id + 1}})
	b.RemovePeer("a1")
	if to := asked(5 * time.Second); !slices.Equal(to, []string{"a2"}) {
		t.Fatalf("asked %v after a1 left, want a2", to)
	}
}
