package catalog

import (
	"math/rand"
	"net/netip"
	"reflect"
	"testing"

	"github.com/dogwood/dogwood/mesh/sixpn"
)

func st(c uint64, n uint32) Stamp { return Stamp{Clock: c, Node: n} }

func orgRec(slug string, gen uint32, created, version Stamp, deleted bool) *Record {
	return &Record{Kind: KindOrg, Key: slug, Gen: gen, Created: created, Version: version, Deleted: deleted, Org: &Org{Slug: slug}}
}

func TestMergeOrder(t *testing.T) {
	cases := []struct {
		name string
		a, b *Record
		want int // a.Compare(b)
	}{
		{"same record", orgRec("x", 1, st(1, 1), st(1, 1), false), orgRec("x", 1, st(1, 1), st(1, 1), false), 0},
		{"newer version of one identity wins", orgRec("x", 1, st(1, 1), st(5, 2), false), orgRec("x", 1, st(1, 1), st(3, 9), false), 1},
		{"tombstone after create wins", orgRec("x", 1, st(1, 1), st(4, 1), true), orgRec("x", 1, st(1, 1), st(1, 1), false), 1},
		{"concurrent creates: first writer wins", orgRec("x", 1, st(3, 1), st(3, 1), false), orgRec("x", 1, st(3, 2), st(3, 2), false), 1},
		{"concurrent creates: lower clock wins even with lower node later", orgRec("x", 1, st(2, 9), st(2, 9), false), orgRec("x", 1, st(3, 1), st(3, 1), false), 1},
		{"a late update of the loser still loses", orgRec("x", 1, st(3, 2), st(99, 2), false), orgRec("x", 1, st(3, 1), st(3, 1), false), -1},
		{"re-create after delete (next gen) beats the tombstone", orgRec("x", 2, st(10, 3), st(10, 3), false), orgRec("x", 1, st(1, 1), st(9, 1), true), 1},
		{"stale create cannot resurrect a deleted record", orgRec("x", 1, st(1, 1), st(1, 1), false), orgRec("x", 1, st(1, 1), st(2, 1), true), -1},
		{"equal stamps: tombstone breaks tie", orgRec("x", 1, st(1, 1), st(2, 1), true), orgRec("x", 1, st(1, 1), st(2, 1), false), 1},
	}
	for _, c := range cases {
		if got := c.a.Compare(c.b); got != c.want {
			t.Errorf("%s: Compare = %d want %d", c.name, got, c.want)
		}
		if got := c.b.Compare(c.a); got != -c.want {
			t.Errorf("%s: reverse Compare = %d want %d", c.name, got, -c.want)
		}
	}
}

// TestConvergesInAnyOrder applies the same set of conflicting records to catalogs in
// random orders and checks they end identical (records and digest).
func TestConvergesInAnyOrder(t *testing.T) {
	var rs []*Record
	for i := 0; i < 200; i++ {
		slug := []string{"a", "b", "c", "d"}[i%4]
		rs = append(rs, orgRec(slug, uint32(1+i%3), st(uint64(i%7+1), uint32(i%5+1)), st(uint64(i%7+1+i%4), uint32(i%5+1)), i%6 == 0))
	}
	var first *Catalog
	for trial := 0; trial < 20; trial++ {
		c := New("h")
		perm := rand.New(rand.NewSource(int64(trial))).Perm(len(rs))
		for _, i := range perm {
			c.Apply(rs[i])
		}
		if first == nil {
			first = c
			continue
		}
		r1, _ := first.Digest()
		r2, _ := c.Digest()
		if r1 != r2 || !reflect.DeepEqual(first.All(), c.All()) {
			t.Fatalf("trial %d diverged", trial)
		}
	}
}

func TestValidate(t *testing.T) {
	good := orgRec("acme", 1, st(1, 1), st(1, 1), false)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []*Record{
		{Kind: 99, Key: "x", Created: st(1, 1), Version: st(1, 1)},
		{Kind: KindOrg, Key: "", Created: st(1, 1), Version: st(1, 1), Org: &Org{}},
		{Kind: KindOrg, Key: "acme", Version: st(1, 1), Org: &Org{Slug: "acme"}},
		{Kind: KindOrg, Key: "acme", Created: st(1, 1), Version: st(1, 1)},
		{Kind: KindOrg, Key: "acme", Created: st(1, 1), Version: st(1, 1), Org: &Org{Slug: "other"}},
		{Kind: KindOrg, Key: "acme", Created: st(1, 1), Version: st(1, 1), Org: &Org{Slug: "acme"}, App: &App{}},
		{Kind: KindHost, Key: "h", Created: st(1, 1), Version: st(1, 1), Host: &Host{Name: "h"}},
		{Kind: KindMachine, Key: "m", Created: st(1, 1), Version: st(1, 1), Machine: &Machine{ID: "m"}},
		{Kind: KindMachine, Key: "m", Created: st(1, 1), Version: st(1, 1), Machine: &Machine{ID: "m", Address: sixpn.MachineAddr(1, 1, 0x10001)}},
	}
	for i, r := range bad {
		if r.Validate() == nil {
			t.Errorf("case %d validated", i)
		}
	}
}

func machineRec(id, app string, net, host, field uint32, hostName, state string, v uint64, deleted bool) *Record {
	return &Record{Kind: KindMachine, Key: id, Gen: 1, Created: st(1, host), Version: st(v, host), Deleted: deleted,
		Machine: &Machine{ID: id, MachinePlace: &MachinePlace{App: app, NetworkID: net, Host: hostName, HostID: host}, Field: field,
			Address: sixpn.MachineAddr(net, host, field), MachineAttrs: &MachineAttrs{State: state}}}
}

// TestSnapshotIncremental checks that the incrementally built snapshot matches the
// reference Build after every change and shares untouched app views.
func TestSnapshotIncremental(t *testing.T) {
	c := New("h1")
	c.Apply(&Record{Kind: KindHost, Key: "h1", Gen: 1, Created: st(1, 1), Version: st(1, 1), Host: &Host{Name: "h1", ID: 1}})
	c.Apply(&Record{Kind: KindOrg, Key: "acme", Gen: 1, Created: st(1, 1), Version: st(1, 1), Org: &Org{Slug: "acme"}})
	c.Apply(&Record{Kind: KindNetwork, Key: "acme/default", Gen: 1, Created: st(1, 1), Version: st(1, 1), Network: &Network{Org: "acme", Name: "default", ID: 0x18}})
	for _, app := range []string{"web", "db"} {
		c.Apply(&Record{Kind: KindApp, Key: AppKey("acme", app), Gen: 1, Created: st(2, 1), Version: st(2, 1), App: &App{Name: app, Org: "acme", Network: "default", NetworkID: 0x18}})
	}
	c.Apply(machineRec("00000000000001", "web", 0x18, 1, 0x10001, "h1", StateStarted, 3, false))
	s1 := c.Snapshot()
	db1 := s1.Apps["acme/db"]
	c.Apply(machineRec("00000000000002", "web", 0x18, 2, 0x10002, "h2", StateStarted, 4, false))
	s2 := c.Snapshot()
	if s2.Apps["acme/db"] != db1 {
		t.Error("untouched app view was rebuilt")
	}
	if len(s2.Apps["acme/web"].Machines) != 2 || len(s1.Apps["acme/web"].Machines) != 1 {
		t.Fatalf("web machines: old %d new %d", len(s1.Apps["acme/web"].Machines), len(s2.Apps["acme/web"].Machines))
	}
	if got := s2.Networks[0x18].HostCounts; got[1] != 1 || got[2] != 1 {
		t.Errorf("host counts %v", got)
	}
	if len(s2.LocalMachines) != 1 || s2.LocalMachines[0].ID != "00000000000001" {
		t.Errorf("local machines %v", s2.LocalMachines)
	}
	// Stop then delete; a stale start must not resurrect it.
	c.Apply(machineRec("00000000000002", "web", 0x18, 2, 0x10002, "h2", StateStopped, 5, false))
	if m := c.Snapshot().Machine("web", "00000000000002"); m == nil || m.State != StateStopped {
		t.Fatalf("stop not visible: %+v", m)
	}
	c.Apply(machineRec("00000000000002", "web", 0x18, 2, 0x10002, "h2", StateStopped, 6, true))
	if c.Apply(machineRec("00000000000002", "web", 0x18, 2, 0x10002, "h2", StateStarted, 5, false)) {
		t.Error("stale update applied over a tombstone")
	}
	s3 := c.Snapshot()
	if s3.Machine("web", "00000000000002") != nil {
		t.Error("deleted machine still in snapshot")
	}
	if !c.FieldUsed(2, 0x10002) {
		t.Error("tombstoned field forgotten")
	}
	if _, ok := addressOwner(c, sixpn.MachineAddr(0x18, 2, 0x10002)); ok {
		t.Error("deleted machine still owns its address")
	}
	// Status changes reach the host views.
	c.SetStatus("h1", StatusSuspect)
	if c.Snapshot().Hosts["h1"].Status != StatusSuspect {
		t.Error("status not in snapshot")
	}
}

func TestPeerIndexAllocation(t *testing.T) {
	c := New("gw")
	for i := 0; i < 3; i++ {
		a, _ := sixpn.PeerAddr(0x18, 7, i)
		c.Apply(&Record{Kind: KindPeer, Key: PeerKey("acme", string(rune('a'+i))), Gen: 1, Created: st(uint64(i+1), 7), Version: st(uint64(i+1), 7),
			Peer: &Peer{Name: string(rune('a' + i)), Org: "acme", NetworkID: 0x18, GatewayID: 7, Gateway: "gw", Address: a}})
	}
	if got := c.FreePeerIndex(7, 0x18, nil); got != 3 {
		t.Fatalf("free index %d", got)
	}
	a, _ := sixpn.PeerAddr(0x18, 7, 1)
	c.Apply(&Record{Kind: KindPeer, Key: "acme/b", Gen: 1, Created: st(2, 7), Version: st(9, 7), Deleted: true,
		Peer: &Peer{Name: "b", Org: "acme", NetworkID: 0x18, GatewayID: 7, Gateway: "gw", Address: a}})
	if got := c.FreePeerIndex(7, 0x18, nil); got != 1 {
		t.Fatalf("freed index not reused: %d", got)
	}
	if got := c.FreePeerIndex(7, 0x18, map[int]bool{1: true}); got != 3 {
		t.Fatalf("reserved index handed out: %d", got)
	}
	if len(c.Snapshot().LocalPeers) != 2 {
		t.Error("local peers")
	}
	_ = netip.Addr{}
}

// addressOwner returns the live record owning a 6PN address. It walks the peers and
// machines: a test's question, which an index would have cost a map entry per record
// to answer.
func addressOwner(c *Catalog, a netip.Addr) (ID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.byKind[KindPeer] {
		if r.Peer.Address == a {
			return r.ID(), true
		}
	}
	var out ID
	var found bool
	c.eachMachine(func(_ int, e *mentry) {
		if !found && e.live() && !e.bodyless && e.m.Address == a {
			out, found = ID{Kind: KindMachine, Key: e.m.ID}, true
		}
	})
	return out, found
}
