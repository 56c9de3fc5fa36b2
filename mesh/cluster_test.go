package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/dogwood/dogwood/mesh/quota"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/store"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// partition is a memberlist transport that drops traffic to and from blocked IPs, so
// tests can cut hosts apart. Each test host gets its own 127.0.0.x address for it.
type partition struct {
	inner   *gossip.Transport
	blocked *sync.Map // ip string -> true
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
	// refused counts traffic the cut stopped, both ways; dials counts connections
	// this host opened. Tests wait on these rather than sleeping "long enough" for
	// something not to happen.
	refused atomic.Int64
	dials   atomic.Int64
}

func newPartition(t *testing.T, ip string, blocked *sync.Map) *partition {
	nt, err := gossip.NewTransport(ip, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{inner: nt, blocked: blocked, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			select {
			case pk := <-nt.PacketCh():
				if p.isBlocked(pk.From.String()) {
					p.refused.Add(1)
					continue
				}
				select {
				case p.packets <- pk:
				case <-p.done:
					return
				}
			case c := <-nt.StreamCh():
				if p.isBlocked(c.RemoteAddr().String()) {
					p.refused.Add(1)
					c.Close()
					continue
				}
				select {
				case p.streams <- c:
				case <-p.done:
					c.Close()
					return
				}
			case <-p.done:
				return
			}
		}
	}()
	return p
}

func (p *partition) isBlocked(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	_, ok := p.blocked.Load(host)
	return ok
}

func (p *partition) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return p.inner.FinalAdvertiseAddr(ip, p.inner.GetAutoBindPort())
}
func (p *partition) WriteTo(b []byte, addr string) (time.Time, error) {
	if p.isBlocked(addr) {
		p.refused.Add(1)
		return time.Now(), nil
	}
	return p.inner.WriteTo(b, addr)
}
func (p *partition) PacketCh() <-chan *memberlist.Packet { return p.packets }
func (p *partition) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	p.dials.Add(1)
	if p.isBlocked(addr) {
		p.refused.Add(1)
		return nil, fmt.Errorf("partitioned from %s", addr)
	}
	return p.inner.DialTimeout(addr, d)
}
func (p *partition) StreamCh() <-chan net.Conn { return p.streams }
func (p *partition) Shutdown() error {
	var err error
	p.once.Do(func() { err = p.shutdown() })
	return err
}

func (p *partition) shutdown() error {
	close(p.done)
	return p.inner.Shutdown()
}

type testHost struct {
	*Node
	tr      *partition
	ip      string
	dir     string
	blocked *sync.Map
	name    string
	key     []byte
}

type cluster struct {
	t     *testing.T
	hosts []*testHost
	ttl   time.Duration // tombstone TTL; zero takes the default
	// preBlock lists IPs the next started host is cut off from from the start.
	preBlock []string
	limits   map[string]quota.Limits
}

var ipCounter atomic.Int32

// fastFailureDetection scales memberlist's LAN timings down ~5x so tests of failure,
// partition and reconnect run in seconds; the protocol is the same.
func fastFailureDetection(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.GossipToTheDeadTime = time.Second
	c.PushPullInterval = 2 * time.Second
}

func (c *cluster) start(name string, key []byte, dir string, ip string, join []string) *testHost {
	c.t.Helper()
	h, err := c.tryStart(name, key, dir, ip, join)
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	return h
}

func (c *cluster) tryStart(name string, key []byte, dir string, ip string, join []string) (*testHost, error) {
	blocked := &sync.Map{}
	for _, b := range c.preBlock {
		blocked.Store(b, true)
	}
	tr := newPartition(c.t, ip, blocked)
	port := tr.inner.GetAutoBindPort()
	lvl := slog.LevelError
	if os.Getenv("DOGWOOD_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	n, err := Start(Config{
		Name: name, DataDir: dir, Region: "ord", GossipAddr: fmt.Sprintf("%s:%d", ip, port),
		Join: join, GossipKey: key, AEInterval: 200 * time.Millisecond, Transport: tr, WireGuard: true,
		TuneMemberlist: fastFailureDetection, ReconnectInterval: 300 * time.Millisecond, TombstoneTTL: c.ttl, Limits: c.limits[name],
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("host", name),
	})
	if err != nil {
		tr.Shutdown()
		return nil, err
	}
	return &testHost{Node: n, tr: tr, ip: ip, dir: dir, blocked: blocked, name: name, key: key}, nil
}

func newCluster(t *testing.T, size int) *cluster { return newClusterTTL(t, size, 0) }

func newClusterTTL(t *testing.T, size int, ttl time.Duration) *cluster {
	return newClusterWith(t, size, ttl, nil)
}

// newClusterWith starts hosts h0… with per-host limits (by name; default otherwise).
func newClusterWith(t *testing.T, size int, ttl time.Duration, limits map[string]quota.Limits) *cluster {
	c := &cluster{t: t, ttl: ttl, limits: limits}
	var join []string
	for i := 0; i < size; i++ {
		ip := fmt.Sprintf("127.0.%d.%d", 10+ipCounter.Add(1)/200, 1+ipCounter.Load()%200)
		h := c.start(fmt.Sprintf("h%d", i), testKey, t.TempDir(), ip, join)
		if i == 0 {
			a, p := h.gossip.LocalAddr()
			join = []string{fmt.Sprintf("%s:%d", a, p)}
		}
		c.hosts = append(c.hosts, h)
	}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			h.Close()
		}
	})
	c.waitMembers(size)
	return c
}

func (c *cluster) waitMembers(n int) {
	c.t.Helper()
	c.eventually(10*time.Second, "membership", func() bool {
		for _, h := range c.hosts {
			alive := 0
			for _, m := range h.Members.List() {
				if m.Status == catalog.StatusAlive {
					alive++
				}
			}
			if alive < n {
				return false
			}
		}
		return true
	})
}

func (c *cluster) eventually(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converged reports whether the given hosts hold identical catalogs.
func converged(hosts ...*testHost) bool {
	r0, _ := hosts[0].cat.Digest()
	for _, h := range hosts[1:] {
		if r, _ := h.cat.Digest(); r != r0 {
			return false
		}
	}
	return true
}

func (c *cluster) waitConverged(hosts ...*testHost) {
	c.t.Helper()
	if len(hosts) == 0 {
		hosts = c.hosts
	}
	c.eventually(10*time.Second, "convergence", func() bool { return converged(hosts...) })
	want := hosts[0].cat.All()
	for _, h := range hosts[1:] {
		if got := h.cat.All(); !reflect.DeepEqual(jsonish(got), jsonish(want)) {
			c.t.Fatalf("%s: digests equal but catalogs differ", h.name)
		}
	}
}

func jsonish(rs []*catalog.Record) []string {
	var out []string
	for _, r := range rs {
		// A machine shares its placement and attributes behind pointers: compare its JSON.
		m, _ := json.Marshal(r.Machine)
		out = append(out, fmt.Sprintf("%v %v %v %v %v %+v %+v %+v %s", r.ID(), r.Gen, r.Created, r.Version, r.Deleted, r.Org, r.App, r.Network, m))
	}
	return out
}

func (c *cluster) cut(a, b *testHost) {
	a.blocked.Store(b.ip, true)
	b.blocked.Store(a.ip, true)
}

func (c *cluster) heal(a, b *testHost) {
	a.blocked.Delete(b.ip)
	b.blocked.Delete(a.ip)
}

func TestClusterConvergence(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	h0, h1, h2 := c.hosts[0], c.hosts[1], c.hosts[2]
	org, err := h0.Orgs.Create(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(org.Networks) != 1 || org.Networks[0].Name != "default" || org.Networks[0].ID == 0 {
		t.Fatalf("org networks %+v", org.Networks)
	}
	// The create's arbiters (every host of a cluster this small) hold the org when it returns.
	for _, h := range c.hosts {
		if h.cat.Live(catalog.ID{Kind: catalog.KindOrg, Key: "acme"}) == nil {
			t.Fatalf("%s lacks the org right after create returned", h.name)
		}
	}
	if _, err := h1.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	var ms []*catalog.Machine
	for _, h := range c.hosts {
		for i := 0; i < 5; i++ {
			m, err := h.Machines.Create(ctx, MachineSpec{App: "web", Metadata: map[string]string{"role": "primary"}})
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
	}
	c.waitConverged()
	for _, h := range c.hosts {
		list, _ := h.Machines.List("", "web")
		if len(list) != 15 {
			t.Fatalf("%s sees %d machines", h.name, len(list))
		}
	}
	// Stop on h2 through h0 (forwarded to the owner), visible everywhere.
	target := ms[len(ms)-1]
	if target.Host != "h2" {
		t.Fatalf("machine on %s", target.Host)
	}
	if _, err := h0.Machines.Action(ctx, target.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	c.eventually(5*time.Second, "stop to propagate", func() bool {
		m, _ := h1.Machines.Get(target.ID)
		return m != nil && m.State == catalog.StateStopped
	})
	if _, err := h1.Machines.Action(ctx, target.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	if _, err := h0.Machines.Get(target.ID); StatusCode(err) != 404 {
		t.Fatalf("destroyed machine: %v", err)
	}
	// Bad input gets clear errors.
	for _, err := range []error{
		func() error { _, err := h0.Orgs.Create(ctx, "Bad_Slug"); return err }(),
		func() error { _, err := h0.Apps.Create(ctx, AppSpec{Name: "x", Org: "nope", Network: ""}); return err }(),
		func() error {
			_, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
			return err
		}(),
		func() error { _, err := h0.Machines.Create(ctx, MachineSpec{App: "ghost"}); return err }(),
	} {
		if err == nil {
			t.Error("bad input accepted")
		}
	}
	_ = h2
}

func TestConcurrentCreateOneWinner(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		slug := fmt.Sprintf("race%d", round)
		var wg sync.WaitGroup
		errs := make([]error, len(c.hosts))
		for i, h := range c.hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = h.Orgs.Create(ctx, slug)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d creates reported success: %v", round, ok, errs)
		}
		c.waitConverged()
	}
}

func TestConcurrentMachinesNoCollision(t *testing.T) {
	c := newCluster(t, 1)
	h := c.hosts[0]
	ctx := context.Background()
	h.Orgs.Create(ctx, "acme")
	h.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				m, err := h.Machines.Create(ctx, MachineSpec{App: "web"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[m.Address.String()] {
					t.Errorf("address %s handed out twice", m.Address)
				}
				seen[m.Address.String()] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("%d machines", len(seen))
	}
}

// cutOffThird starts three hosts sharing an org and an app, then cuts h2 off.
func cutOffThird(t *testing.T) (c *cluster, h0, h1, h2 *testHost) {
	c = newCluster(t, 3)
	h0, h1, h2 = c.hosts[0], c.hosts[1], c.hosts[2]
	h0.Orgs.Create(context.Background(), "acme")
	h0.Apps.Create(context.Background(), AppSpec{Name: "web", Org: "acme", Network: ""})
	c.waitConverged()
	c.cut(h2, h0)
	c.cut(h2, h1)
	return c, h0, h1, h2
}

func TestPartitionAndHeal(t *testing.T) {
	c, h0, h1, h2 := cutOffThird(t)
	ctx := context.Background()
	// Both sides write while apart.
	m0, err := h0.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := h2.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Apps.Create(ctx, AppSpec{Name: "db", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	// The other side's own write arriving shows gossip ran meanwhile; h2's sends
	// stopped at the cut show it tried to cross.
	sent := h2.tr.refused.Load()
	c.eventually(10*time.Second, "m0 on h1 and h2's sends refused", func() bool {
		_, err := h1.Machines.Get(m0.ID)
		return err == nil && h2.tr.refused.Load() >= sent+10
	})
	if _, err := h1.Machines.Get(m2.ID); err == nil {
		t.Fatal("partition leaked a write")
	}
	c.heal(h2, h0)
	c.heal(h2, h1)
	c.waitConverged()
	for _, h := range c.hosts {
		for _, id := range []string{m0.ID, m2.ID} {
			if _, err := h.Machines.Get(id); err != nil {
				t.Errorf("%s after heal: %v", h.name, err)
			}
		}
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	h0.Orgs.Create(ctx, "acme")
	h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	m, err := h1.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	id, key := h1.HostID(), h1.PrivateKey()
	// Close without leaving: as close to kill -9 as an in-process test gets (the
	// process test in cmd/dogwood does the real kill -9).
	h1.Close()
	a, p := h0.gossip.LocalAddr()
	h1b := c.start("h1", testKey, h1.dir, h1.ip, []string{fmt.Sprintf("%s:%d", a, p)})
	c.hosts[1] = h1b
	if h1b.HostID() != id || h1b.PrivateKey() != key {
		t.Fatal("identity changed across restart")
	}
	got, err := h1b.Machines.Get(m.ID)
	if err != nil || got.Address != m.Address {
		t.Fatalf("machine after restart: %+v %v", got, err)
	}
	c.waitConverged()
}

func TestWrongKeyCannotJoin(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	c.hosts[0].Orgs.Create(ctx, "acme")
	a, p := c.hosts[0].gossip.LocalAddr()
	bad := c.start("intruder", []byte("ffffffffffffffffffffffffffffffff"), t.TempDir(), "127.0.9.9", []string{fmt.Sprintf("%s:%d", a, p)})
	defer bad.Close()
	// Wait until the intruder has tried to join twice (its join retries after a
	// failure: the first was turned away by the key), rather than sleeping.
	c.eventually(10*time.Second, "the intruder's second join attempt", func() bool { return bad.tr.dials.Load() >= 2 })
	if len(bad.Orgs.List()) != 0 {
		t.Fatal("host with the wrong key read the catalog")
	}
	for _, m := range c.hosts[0].Members.List() {
		if m.Name == "intruder" {
			t.Fatal("host with the wrong key joined")
		}
	}
}

func TestSecondAgentSameDataDir(t *testing.T) {
	c := newCluster(t, 1)
	_, err := Start(Config{Name: "h0", DataDir: c.hosts[0].dir, GossipAddr: "127.0.0.1:0", GossipKey: testKey})
	if err == nil {
		t.Fatal("second agent on the same data dir started")
	}
}

func TestGarbageOnGossipPortIsDropped(t *testing.T) {
	c := newCluster(t, 2)
	h0 := c.hosts[0]
	a, p := h0.gossip.LocalAddr()
	conn, err := net.Dial("udp", net.JoinHostPort(a.String(), fmt.Sprint(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 50; i++ {
		conn.Write([]byte(fmt.Sprintf("garbage %d \x00\xff\x01", i)))
	}
	tc, err := net.Dial("tcp", net.JoinHostPort(a.String(), fmt.Sprint(p)))
	if err == nil {
		tc.Write([]byte("\x01\x02\x03 not memberlist"))
		tc.Close()
	}
	c.eventually(5*time.Second, "drops counted", func() bool { return h0.gossip.Dropped() > 0 })
	// The agent still works.
	if _, err := h0.Orgs.Create(context.Background(), "still-alive"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
}

func TestKeyRotation(t *testing.T) {
	newKey := []byte("NEWKEYNEWKEYNEWKEYNEWKEYNEWKEY!!")
	start := func(name, ip string, primary []byte, extra [][]byte, join []string) *Node {
		tr := newPartition(t, ip, &sync.Map{})
		n, err := Start(Config{
			Name: name, DataDir: t.TempDir(), GossipAddr: fmt.Sprintf("%s:%d", ip, tr.inner.GetAutoBindPort()),
			GossipKey: primary, GossipExtraKeys: extra, Transport: tr, Join: join, AEInterval: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	// Mid-rotation: one host still encrypts with the old key and accepts the new one,
	// the other already encrypts with the new key and accepts the old one.
	oldFirst := start("old-first", "127.0.8.1", testKey, [][]byte{newKey}, nil)
	a, p := oldFirst.gossip.LocalAddr()
	newFirst := start("new-first", "127.0.8.2", newKey, [][]byte{testKey}, []string{fmt.Sprintf("%s:%d", a, p)})
	deadline := time.Now().Add(5 * time.Second)
	for oldFirst.Catalog().Status("new-first") != catalog.StatusAlive || newFirst.Catalog().Status("old-first") != catalog.StatusAlive {
		if time.Now().After(deadline) {
			t.Fatal("hosts mid-rotation did not see each other")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := oldFirst.Orgs.Create(context.Background(), "rotating"); err != nil {
		t.Fatal(err)
	}
	for newFirst.Catalog().Live(catalog.ID{Kind: catalog.KindOrg, Key: "rotating"}) == nil {
		if time.Now().After(deadline) {
			t.Fatal("record did not cross mid-rotation")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLongPartitionHeals cuts a host off for longer than memberlist keeps gossiping to
// dead nodes; the reconnect loop must still bring it back, with its writes.
func TestLongPartitionHeals(t *testing.T) {
	c, h0, h1, h2 := cutOffThird(t)
	ctx := context.Background()
	c.eventually(10*time.Second, "h2 declared failed", func() bool {
		return h0.cat.Status("h2") == catalog.StatusFailed && h2.cat.Status("h0") == catalog.StatusFailed
	})
	m, err := h2.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // well past GossipToTheDeadTime
	c.heal(h2, h0)
	c.heal(h2, h1)
	c.eventually(10*time.Second, "h2 alive again everywhere", func() bool {
		return h0.cat.Status("h2") == catalog.StatusAlive && h1.cat.Status("h2") == catalog.StatusAlive && h2.cat.Status("h0") == catalog.StatusAlive
	})
	c.waitConverged()
	if _, err := h1.Machines.Get(m.ID); err != nil {
		t.Fatalf("write made during the partition: %v", err)
	}
}

// TestSuspectThenFailed checks the member states a cut host goes through on the host
// that probes it: alive → suspect → failed, and alive again after healing.
func TestSuspectThenFailed(t *testing.T) {
	c := newCluster(t, 2)
	h0, h1 := c.hosts[0], c.hosts[1]
	c.cut(h0, h1)
	seen := map[string]bool{}
	c.eventually(10*time.Second, "failed", func() bool {
		st := h0.cat.Status("h1")
		seen[st] = true
		return st == catalog.StatusFailed
	})
	if !seen[catalog.StatusSuspect] {
		t.Errorf("never saw suspect; saw %v", seen)
	}
	c.heal(h0, h1)
	c.eventually(10*time.Second, "alive again", func() bool { return h0.cat.Status("h1") == catalog.StatusAlive })
}

// TestHostIDCollisionResolved gives a new host the id of an existing one: before its
// first allocation it must notice and take a fresh id, and the older host keeps its.
func TestHostIDCollisionResolved(t *testing.T) {
	c := newCluster(t, 1)
	h0 := c.hosts[0]
	ctx := context.Background()
	h0.Orgs.Create(ctx, "acme")
	h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	if _, err := h0.Machines.Create(ctx, MachineSpec{App: "web"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := wgtypes.GeneratePrivateKey()
	// Created far in the future: the newcomer is the later host and must move.
	st.SaveIdentity(store.Identity{Name: "dup", HostID: h0.HostID(), PrivateKey: key.String(), Gen: 1,
		Created: catalog.Stamp{Clock: 1 << 40, Node: h0.HostID()}})
	st.Close()
	a, p := h0.gossip.LocalAddr()
	dup := c.start("dup", testKey, dir, "127.0.7.7", []string{net.JoinHostPort(a.String(), fmt.Sprint(p))})
	c.hosts = append(c.hosts, dup)
	c.waitConverged()
	m, err := dup.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if dup.HostID() == h0.HostID() || m.HostID != dup.HostID() {
		t.Fatalf("collision not resolved: h0 %08x dup %08x machine %08x", h0.HostID(), dup.HostID(), m.HostID)
	}
	c.waitConverged()
	if got := h0.cat.HostIDClaims(h0.HostID()); len(got) != 1 || got[0] != "h0" {
		// The dup's first record claimed the id and stays as history; it must not be live.
		if r := h0.cat.Live(catalog.ID{Kind: catalog.KindHost, Key: "dup"}); r == nil || r.Host.ID == h0.HostID() {
			t.Fatalf("dup still claims h0's id: %v", got)
		}
	}
}
