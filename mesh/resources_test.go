package mesh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/invite"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// The resource types built on fakes: no gossip, no disk, no root. The Reader is a
// real in-memory catalog (the state the resources read); the fake Writer applies to
// it what it is given and keeps a log, so a test sees exactly what a resource wrote.

type fakeWriter struct {
	cat      *catalog.Catalog
	mu       sync.Mutex
	written  []*catalog.Record
	flushes  int
	writable error
}

func (w *fakeWriter) Writable() error { return w.writable }

func (w *fakeWriter) Record(rs ...*catalog.Record) error {
	if w.writable != nil {
		return w.writable
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rs {
		w.cat.Apply(r)
		w.written = append(w.written, r)
	}
	return nil
}

func (w *fakeWriter) Flush() {
	w.mu.Lock()
	w.flushes++
	w.mu.Unlock()
}

func (w *fakeWriter) Commit(rs ...*catalog.Record) error {
	err := w.Record(rs...)
	w.Flush()
	return err
}

func (w *fakeWriter) Tombstones(rs ...*catalog.Record) []*catalog.Record {
	return tombstonesAt(w.cat, rs)
}

func (w *fakeWriter) log() []*catalog.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*catalog.Record(nil), w.written...)
}

// fakeNamer grants a name unless it is live on this host or listed in lost (taken
// by another host, as arbiters would answer).
type fakeNamer struct {
	w    *fakeWriter
	lost map[catalog.ID]bool
	// meanwhile, when set, runs between the claim and the write: what the arbiters'
	// answers bring in (another host's record) lands in the catalog there.
	meanwhile func(r *catalog.Record)
	reclaims  int
}

func (n *fakeNamer) CreateNamed(ctx context.Context, build func() *catalog.Record, id catalog.ID, what string) (*catalog.Record, error) {
	return n.WriteNamed(ctx, NamedWrite{ID: id, What: what, Build: build,
		Taken: func(cur *catalog.Record, _ uint32) error {
			if cur != nil && !cur.Deleted {
				return conflict("%s already exists", what)
			}
			return nil
		}})
}

func (n *fakeNamer) WriteNamed(_ context.Context, nw NamedWrite) (*catalog.Record, error) {
	cur := n.w.cat.Get(nw.ID)
	gen := uint32(1)
	if cur != nil {
		gen = cur.Gen + 1
	}
	if err := nw.Taken(cur, gen); err != nil {
		return nil, err
	}
	if n.lost[nw.ID] {
		return nil, conflict("%s already exists: created concurrently on another host", nw.What)
	}
	r := nw.Build()
	stamp := n.w.cat.Tick()
	r.Gen, r.Created, r.Version = gen, stamp, stamp
	if n.meanwhile != nil {
		n.meanwhile(r)
	}
	return r, n.w.Commit(r)
}

func (n *fakeNamer) Reclaim(_ context.Context, r *catalog.Record, _ string) error {
	n.reclaims++
	return n.w.Commit(r)
}

type fakeInstaller struct {
	mu   sync.Mutex
	ids  []catalog.ID
	fail error
}

func (f *fakeInstaller) Installed(_ context.Context, id catalog.ID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, id)
	return f.fail
}

type fakeAllocator struct {
	mu     sync.Mutex
	hostID uint32
	calls  int
}

func (a *fakeAllocator) Allocate(f func(hostID uint32) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return f(a.hostID)
}

type fakeCaller struct {
	calls []string
	err   error
}

func (c *fakeCaller) Call(_ context.Context, host, op string, _, _ any) error {
	c.calls = append(c.calls, host+" "+op)
	return c.err
}

// world is one host's resources over fakes, with org acme, its default network and
// app web in it.
type world struct {
	cat   *catalog.Catalog
	w     *fakeWriter
	names *fakeNamer
	inst  *fakeInstaller
	alloc *fakeAllocator
	call  *fakeCaller

	machines *Machines
	apps     *Apps
	orgs     *Orgs
	nets     *Networks
}

func newWorld(t *testing.T) *world {
	t.Helper()
	cat := catalog.New("h1")
	cat.SetSelfID(0x0a0b0c0d)
	w := &fakeWriter{cat: cat}
	x := &world{cat: cat, w: w, names: &fakeNamer{w: w, lost: map[catalog.ID]bool{}}, inst: &fakeInstaller{},
		alloc: &fakeAllocator{hostID: 0x0a0b0c0d}, call: &fakeCaller{}}
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	x.nets = &Networks{r: cat, names: x.names, randID: sixpn.Random32}
	x.orgs = &Orgs{r: cat, w: w, names: x.names, networks: x.nets, now: now}
	x.apps = &Apps{r: cat, w: w, names: x.names}
	x.machines = &Machines{host: "h1", region: "local", r: cat, w: w, alloc: x.alloc, inst: x.inst, call: x.call, now: now,
		randField: sixpn.RandomMachineField}
	ctx := context.Background()
	if _, err := x.orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.apps.Create(ctx, AppSpec{Name: "web", Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	return x
}

func TestMachinesCreateAllocatesFreeFields(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	app := x.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey("acme", "web")}).App
	// The draw repeats fields already taken before it offers a free one.
	draws := []uint32{1000, 1000, 1000, 1001, 1000, 1001, 1001, 1002}
	x.machines.randField = func() uint32 {
		f := draws[0]
		draws = draws[1:]
		return f
	}
	for _, want := range []uint32{1000, 1001, 1002} {
		m, err := x.machines.Create(ctx, MachineSpec{App: "web"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Field != want {
			t.Fatalf("machine got field %d, want %d (the first free one drawn)", m.Field, want)
		}
		if m.Host != "h1" || m.HostID != x.alloc.hostID || m.NetworkID != app.NetworkID {
			t.Fatalf("machine placed at %s/%08x in network %08x, want h1/%08x in %08x", m.Host, m.HostID, m.NetworkID, x.alloc.hostID, app.NetworkID)
		}
		if !x.cat.FieldUsed(x.alloc.hostID, m.Field) {
			t.Fatalf("field %d of machine %s is not recorded as used", m.Field, m.ID)
		}
		if want := sixpn.MachineAddr(app.NetworkID, x.alloc.hostID, m.Field); m.Address != want {
			t.Fatalf("address %s, want %s", m.Address, want)
		}
	}
	if len(draws) != 0 {
		t.Fatalf("%d draws left: a create stopped before a free field", len(draws))
	}
	if x.alloc.calls != 3 || len(x.inst.ids) != 3 {
		t.Fatalf("%d allocations and %d installs for 3 creates, want one each", x.alloc.calls, len(x.inst.ids))
	}
}

func TestMachinesCreateRetryByRequestID(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	spec := MachineSpec{App: "web", RequestID: "req-1"}
	first, err := x.machines.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	before := len(x.w.log())
	again, err := x.machines.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.Field != first.Field {
		t.Fatalf("retry made %s (field %d), want the first attempt's %s (field %d)", again.ID, again.Field, first.ID, first.Field)
	}
	if got := len(x.w.log()); got != before {
		t.Fatalf("retry wrote %d records, want none", got-before)
	}
	// The retry installs again: the first attempt may have failed after recording.
	if n := len(x.inst.ids); n != 2 || x.inst.ids[1].Key != first.ID {
		t.Fatalf("installs %v, want the machine twice", x.inst.ids)
	}
	if _, err := x.machines.Action(ctx, first.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.machines.Create(ctx, spec); StatusCode(err) != http.StatusConflict {
		t.Fatalf("retry of a destroyed machine's request: %v, want 409", err)
	}
}

func TestMachinesDestroyWritesTombstone(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	m, err := x.machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.machines.Action(ctx, m.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	log := x.w.log()
	last := log[len(log)-1]
	if last.Kind != catalog.KindMachine || last.Key != m.ID || !last.Deleted {
		t.Fatalf("last write %s deleted=%v, want a tombstone of machine %s", last.ID(), last.Deleted, m.ID)
	}
	if x.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: m.ID}) != nil {
		t.Fatal("destroyed machine still live")
	}
	if _, err := x.machines.Get(m.ID); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("get after destroy: %v, want 404", err)
	}
	if len(x.call.calls) != 0 {
		t.Fatalf("a machine of this host was sent elsewhere: %v", x.call.calls)
	}
}

func TestMachinesActionGoesToOwner(t *testing.T) {
	x := newWorld(t)
	stamp := x.cat.Tick()
	app := x.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey("acme", "web")}).App
	x.cat.Apply(&catalog.Record{Kind: catalog.KindHost, Key: "h2", Gen: 1, Created: stamp, Version: stamp,
		Host: &catalog.Host{Name: "h2", ID: 7, Region: "local"}})
	other := &catalog.Machine{ID: "0123456789abcd", Field: 9, CreatedAt: time.Unix(1, 0).UTC(),
		MachinePlace: &catalog.MachinePlace{App: "web", Org: "acme", Network: app.Network, NetworkID: app.NetworkID, Host: "h2", HostID: 7, Region: "local"},
		MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, ProcessGroup: "app", Source: catalog.SourceAPI}}
	other.Address = sixpn.MachineAddr(app.NetworkID, 7, 9)
	x.cat.Apply(&catalog.Record{Kind: catalog.KindMachine, Key: other.ID, Gen: 1, Created: stamp, Version: stamp, Machine: other})
	before := len(x.w.log())
	x.cat.SetStatus("h2", catalog.StatusFailed)
	if _, err := x.machines.Action(context.Background(), other.ID, "stop"); StatusCode(err) != http.StatusServiceUnavailable || len(x.call.calls) != 0 {
		t.Fatalf("stop of a machine whose host failed: %v, calls %v; want 503 and no call", err, x.call.calls)
	}
	x.cat.SetStatus("h2", catalog.StatusAlive)
	x.call.err = errors.New("h2 unreachable")
	if _, err := x.machines.Action(context.Background(), other.ID, "stop"); err == nil || len(x.call.calls) != 1 || x.call.calls[0] != "h2 "+opMachine {
		t.Fatalf("stop of h2's machine: err %v, calls %v; want it sent to h2", err, x.call.calls)
	}
	if got := len(x.w.log()); got != before {
		t.Fatalf("this host wrote %d records for another host's machine", got-before)
	}
}

func TestAppsNameTaken(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	if _, err := x.apps.Create(ctx, AppSpec{Name: "web", Org: "acme"}); StatusCode(err) != http.StatusConflict {
		t.Fatalf("second app web: %v, want 409", err)
	}
	// Taken on another host: the arbiters refuse the name.
	x.names.lost[catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey("acme", "api")}] = true
	if _, err := x.apps.Create(ctx, AppSpec{Name: "api", Org: "acme"}); StatusCode(err) != http.StatusConflict {
		t.Fatalf("app api won elsewhere: %v, want 409", err)
	}
	if x.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey("acme", "api")}) != nil {
		t.Fatal("an app whose name was refused was written")
	}
	// Another org may use the name.
	if _, err := x.orgs.Create(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.apps.Create(ctx, AppSpec{Name: "web", Org: "beta"}); err != nil {
		t.Fatalf("app web in another org: %v", err)
	}
}

func TestAppsRemoveKeepsAppWithMachines(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	m, err := x.machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.apps.Remove(ctx, "acme", "web"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("remove app with a machine: %v, want 409", err)
	}
	if _, err := x.machines.Action(ctx, m.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	if err := x.apps.Remove(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
}

func TestOrgsNameTaken(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	if _, err := x.orgs.Create(ctx, "acme"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("second org acme: %v, want 409", err)
	}
	x.names.lost[catalog.ID{Kind: catalog.KindOrg, Key: "zeta"}] = true
	if _, err := x.orgs.Create(ctx, "zeta"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("org zeta won elsewhere: %v, want 409", err)
	}
	if got := len(x.orgs.List()); got != 1 {
		t.Fatalf("%d orgs listed, want 1", got)
	}
	info, err := x.orgs.Create(ctx, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Networks) != 1 || info.Networks[0].Name != DefaultNetwork {
		t.Fatalf("org created with networks %+v, want its default network", info.Networks)
	}
}

func TestOrgsSetLimitsAndRemove(t *testing.T) {
	x := newWorld(t)
	x.orgs.limits = quota.Limits{}
	ctx := context.Background()
	two := 2
	info, err := x.orgs.SetLimits(ctx, "acme", OrgLimitsUpdate{Apps: &two})
	if err != nil {
		t.Fatal(err)
	}
	if info.Limits.Apps != 2 {
		t.Fatalf("apps limit %d after set-limits 2", info.Limits.Apps)
	}
	if err := x.orgs.Remove(ctx, "acme"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("remove org with an app: %v, want 409", err)
	}
	if err := x.apps.Remove(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if err := x.orgs.Remove(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []catalog.Kind{catalog.KindOrg, catalog.KindNetwork, catalog.KindApp} {
		if rs := x.cat.List(k); len(rs) != 0 {
			t.Fatalf("%d live %s records left after the org's removal (its limits carrier included)", len(rs), k)
		}
	}
}

func TestNetworksLostIDTakesAnother(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	ids := []uint32{77, 78}
	x.nets.randID = func() uint32 {
		id := ids[0]
		ids = ids[1:]
		return id
	}
	// While the create claims id 77, an earlier create elsewhere turns out to hold it.
	x.names.meanwhile = func(r *catalog.Record) {
		if r.Network == nil {
			return
		}
		x.names.meanwhile = nil
		early := catalog.Stamp{Clock: 1, Node: 1}
		x.cat.Apply(&catalog.Record{Kind: catalog.KindNetwork, Key: catalog.NetworkKey("beta", "default"), Gen: 1, Created: early, Version: early,
			Network: &catalog.Network{Org: "beta", Name: "default", ID: 77}})
	}
	info, err := x.nets.Create(ctx, "acme", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != 78 || x.names.reclaims != 1 {
		t.Fatalf("network got id %d after %d reclaims, want 78 after 1", info.ID, x.names.reclaims)
	}
	if r := x.cat.Live(catalog.ID{Kind: catalog.KindNetwork, Key: catalog.NetworkKey("acme", "staging")}); r == nil || r.Network.ID != 78 {
		t.Fatalf("catalog holds %+v, want the network with id 78", r)
	}
	if _, err := x.nets.Create(ctx, "nobody", "x"); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("network in a missing org: %v, want 404", err)
	}
}

// gatewayWorld adds this host as a live gateway and its Peers.
func gatewayWorld(t *testing.T) (*world, *Peers) {
	x := newWorld(t)
	key, _ := wgtypes.GeneratePrivateKey()
	stamp := x.cat.Tick()
	x.cat.Apply(&catalog.Record{Kind: catalog.KindHost, Key: "h1", Gen: 1, Created: stamp, Version: stamp,
		Host: &catalog.Host{Name: "h1", ID: x.alloc.hostID, Region: "local", Gateway: true,
			PublicKey: key.PublicKey().String(), PublicEndpoint: "198.18.0.1:51820"}})
	x.cat.SetStatus("h1", catalog.StatusAlive)
	m := newMetrics()
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw := &gatewayPeers{host: "h1", region: "local", gateway: true, r: x.cat, w: x.w, names: x.names, alloc: x.alloc,
		inst: x.inst, now: now, log: log, metrics: m, reserved: map[int]bool{}}
	ps := &Peers{host: "h1", r: x.cat, w: x.w, call: x.call, rtt: func(string) (time.Duration, bool) { return 0, false },
		now: now, log: log, metrics: m, gw: gw}
	return x, ps
}

func TestPeersCreateOnThisGateway(t *testing.T) {
	x, ps := gatewayWorld(t)
	ctx := context.Background()
	pub := func() string { k, _ := wgtypes.GeneratePrivateKey(); return k.PublicKey().String() }
	k1 := pub()
	a, err := ps.Create(ctx, PeerSpec{Org: "acme", Name: "laptop", PublicKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ps.Create(ctx, PeerSpec{Org: "acme", Name: "phone", PublicKey: pub()})
	if err != nil {
		t.Fatal(err)
	}
	if a.Gateway != "h1" || a.Address == b.Address {
		t.Fatalf("peers on %s at %s and %s: want this gateway, two addresses", a.Gateway, a.Address, b.Address)
	}
	if len(ps.gw.reserved) != 0 {
		t.Fatalf("slots still reserved after the creates: %v", ps.gw.reserved)
	}
	if len(x.call.calls) != 0 {
		t.Fatalf("a peer of this gateway was sent elsewhere: %v", x.call.calls)
	}
	if _, err := ps.Create(ctx, PeerSpec{Org: "acme", Name: "again", PublicKey: k1}); StatusCode(err) != http.StatusConflict {
		t.Fatalf("a second peer with one key: %v, want 409", err)
	}
	// Not installed: the record is taken back.
	x.inst.fail = errors.New("wg: no device")
	if _, err := ps.Create(ctx, PeerSpec{Org: "acme", Name: "tablet", PublicKey: pub()}); err == nil {
		t.Fatal("create succeeded though the data plane failed")
	}
	if x.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey("acme", "tablet")}) != nil {
		t.Fatal("a peer the data plane refused stays recorded")
	}
	x.inst.fail = nil
	if err := ps.Remove(ctx, "acme", "laptop"); err != nil {
		t.Fatal(err)
	}
	if x.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey("acme", "laptop")}) != nil {
		t.Fatal("removed peer still live")
	}
	x.cat.SetStatus("h1", catalog.StatusLeft)
	if _, err := ps.Create(ctx, PeerSpec{Org: "acme", Name: "late", PublicKey: pub()}); StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("create with no live gateway: %v, want 503", err)
	}
}

func TestDNSRecordsAliasSwitch(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	if _, err := x.apps.Create(ctx, AppSpec{Name: "web-green", Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	ds := &DNSRecords{r: x.cat, w: x.w, names: x.names, now: time.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	add := func(name, typ, value string) error {
		_, err := ds.Add(ctx, DNSRecordSpec{Org: "acme", Name: name, Type: typ, Value: value})
		return err
	}
	if err := add("www", "ALIAS", "web"); err != nil {
		t.Fatal(err)
	}
	if err := add("www", "ALIAS", "web"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("the same ALIAS again: %v, want 409", err)
	}
	if err := add("www", "ALIAS", "web-green"); err != nil {
		t.Fatal(err)
	}
	var aliases []*catalog.Record
	for _, r := range x.cat.List(catalog.KindDNSRecord) {
		if r.DNS.Name == "www.internal" {
			aliases = append(aliases, r)
		}
	}
	if len(aliases) != 1 || aliases[0].DNS.Value != "web-green.internal" || aliases[0].Gen != 2 {
		t.Fatalf("after the switch: %d records for www, want one ALIAS to web-green in generation 2", len(aliases))
	}
	if err := add("db", "TXT", "x"); err != nil {
		t.Fatal(err)
	}
	if err := add("db", "TXT", "x"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("the same record again: %v, want 409", err)
	}
	gone, err := ds.Remove(ctx, DNSRecordFilter{Org: "acme", Name: "www"})
	if err != nil || len(gone) != 1 {
		t.Fatalf("remove www: %v, %d removed", err, len(gone))
	}
	if _, err := ds.Remove(ctx, DNSRecordFilter{Org: "acme", Name: "www"}); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("remove www twice: %v, want 404", err)
	}
}

func TestMembersRemove(t *testing.T) {
	x := newWorld(t)
	ctx := context.Background()
	ms := &Members{host: "h1", r: x.cat, w: x.w}
	stamp := x.cat.Tick()
	x.cat.Apply(&catalog.Record{Kind: catalog.KindHost, Key: "h2", Gen: 1, Created: stamp, Version: stamp,
		Host: &catalog.Host{Name: "h2", ID: 7, Region: "local"}})
	app := x.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey("acme", "web")}).App
	m := &catalog.Machine{ID: "0123456789abcd", Field: 9, CreatedAt: time.Unix(1, 0).UTC(), Address: sixpn.MachineAddr(app.NetworkID, 7, 9),
		MachinePlace: &catalog.MachinePlace{App: "web", Org: "acme", Network: app.Network, NetworkID: app.NetworkID, Host: "h2", HostID: 7, Region: "local"},
		MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, ProcessGroup: "app", Source: catalog.SourceAPI}}
	x.cat.Apply(&catalog.Record{Kind: catalog.KindMachine, Key: m.ID, Gen: 1, Created: stamp, Version: stamp, Machine: m})
	if err := ms.Remove(ctx, "h1"); StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("remove this host: %v, want 400", err)
	}
	x.cat.SetStatus("h2", catalog.StatusAlive)
	if err := ms.Remove(ctx, "h2"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("remove a live host: %v, want 409", err)
	}
	x.cat.SetStatus("h2", catalog.StatusLeft)
	if err := ms.Remove(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []catalog.ID{{Kind: catalog.KindHost, Key: "h2"}, {Kind: catalog.KindMachine, Key: m.ID}} {
		if r := x.cat.Get(id); r == nil || !r.Deleted {
			t.Fatalf("%s not tombstoned with its host", id)
		}
	}
}

func TestInvitesIssueAndRedeem(t *testing.T) {
	x, ps := gatewayWorld(t)
	ctx := context.Background()
	now := ps.now
	book, err := invite.OpenBook(t.TempDir()+"/invites.json", now)
	if err != nil {
		t.Fatal(err)
	}
	iv := &Invites{cfg: &InviteConfig{Book: book, Endpoint: "198.18.0.1:8443"}, gateway: true, host: "h1", region: "local",
		r: x.cat, pool: ps.gw, call: x.call, rtt: ps.rtt, now: now, log: ps.log, metrics: ps.metrics}
	spec := InviteSpec{Org: "acme", Name: "laptop", ExpiresAt: now().Add(time.Hour)}
	info, err := iv.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iv.Create(ctx, spec); StatusCode(err) != http.StatusConflict {
		t.Fatalf("a second invitation for one peer: %v, want 409", err)
	}
	if list, _ := iv.List(ctx, "acme"); len(list) != 1 || list[0].Code != "" || list[0].DNS != "full" {
		t.Fatalf("pending invitations %+v, want one, without its code, DNS full", list)
	}
	code, err := invite.Decode(info.Code)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := wgtypes.GeneratePrivateKey()
	resp, err := iv.Redeem(ctx, code.Secret, k.PublicKey().String())
	if err != nil {
		t.Fatal(err)
	}
	r := x.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey("acme", "laptop")})
	if r == nil || r.Peer.PublicKey != k.PublicKey().String() || resp.Address != r.Peer.Address.String() {
		t.Fatalf("redeemed peer %+v, answer %+v: want the peer with the laptop's key at the answered address", r, resp)
	}
	if _, err := iv.Redeem(ctx, code.Secret, k.PublicKey().String()); err == nil {
		t.Fatal("an invitation was redeemed twice")
	}
	if err := iv.Remove(ctx, "acme", "laptop"); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("revoke a redeemed invitation: %v, want 404", err)
	}
}
