package replica

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/clock"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// disk is a Durable in memory. put, when set, runs before each Put (under no lock)
// and can fail it or block it.
type disk struct {
	mu      sync.Mutex
	recs    map[catalog.ID]*catalog.Record
	puts    [][]catalog.ID // ids of each Put, in order
	alive   time.Time
	failing bool
	put     func(rs []*catalog.Record) error
}

func newDisk() *disk { return &disk{recs: map[catalog.ID]*catalog.Record{}} }

func (d *disk) Put(rs ...*catalog.Record) error {
	if d.put != nil {
		if err := d.put(rs); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []catalog.ID
	for _, r := range rs {
		ids = append(ids, r.ID())
	}
	d.puts = append(d.puts, ids)
	if d.failing {
		return errors.New("no space left on device")
	}
	for _, r := range rs {
		d.recs[r.ID()] = r
	}
	return nil
}

func (d *disk) Delete(ids ...catalog.ID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		delete(d.recs, id)
	}
	return nil
}

func (d *disk) AliveAt() (time.Time, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.alive, !d.alive.IsZero(), nil
}

func (d *disk) SaveAliveAt(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.alive = t
	return nil
}

func (d *disk) LoadEach(_ int, f func([]*catalog.Record)) error {
	d.mu.Lock()
	var rs []*catalog.Record
	for _, r := range d.recs {
		rs = append(rs, r)
	}
	d.mu.Unlock()
	f(rs)
	return nil
}

func (d *disk) get(id catalog.ID) *catalog.Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recs[id]
}

func (d *disk) setFailing(f bool) { d.mu.Lock(); d.failing = f; d.mu.Unlock() }

func (d *disk) putCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.puts)
}

// pub records what was published.
type pub struct {
	mu  sync.Mutex
	out []*catalog.Record
}

func (p *pub) Publish(rs ...*catalog.Record) {
	p.mu.Lock()
	p.out = append(p.out, rs...)
	p.mu.Unlock()
}
func (p *pub) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.out) }

// gate opens and closes writes.
type gate struct{ err error }

func (g *gate) Writable() error { return g.err }

// cluster is a Cluster whose touch the test sets.
type cluster struct {
	mu      sync.Mutex
	inTouch bool
}

func (c *cluster) InTouch() bool          { c.mu.Lock(); defer c.mu.Unlock(); return c.inTouch }
func (c *cluster) Self() (string, uint32) { return "h0", 7 }
func (c *cluster) set(inTouch bool)       { c.mu.Lock(); c.inTouch = inTouch; c.mu.Unlock() }

type fixture struct {
	r     *Replica
	cat   *catalog.Catalog
	disk  *disk
	pub   *pub
	gate  *gate
	clus  *cluster
	clock *clock.Fake
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFixture(t *testing.T, ttl time.Duration) *fixture {
	t.Helper()
	f := &fixture{cat: catalog.New("h0"), disk: newDisk(), pub: &pub{}, gate: &gate{}, clus: &cluster{inTouch: true}, clock: clock.NewFake(t0)}
	f.cat.SetSelfID(7)
	f.r = New(Config{Catalog: f.cat, Durable: f.disk, Publisher: f.pub, Gate: f.gate, Cluster: f.clus,
		Clock: f.clock, TTL: ttl, Window: 100 * time.Millisecond})
	t.Cleanup(func() { f.r.Close() })
	return f
}

func stamp(c uint64, node uint32) catalog.Stamp { return catalog.Stamp{Clock: c, Node: node} }

func org(slug string, version uint64) *catalog.Record {
	return &catalog.Record{Kind: catalog.KindOrg, Key: slug, Gen: 1, Created: stamp(1, 1), Version: stamp(version, 1),
		Org: &catalog.Org{Slug: slug}}
}

func machine(id, host string, hostID uint32) *catalog.Record {
	return &catalog.Record{Kind: catalog.KindMachine, Key: id, Gen: 1, Created: stamp(1, hostID), Version: stamp(2, hostID),
		Machine: &catalog.Machine{ID: id, MachinePlace: &catalog.MachinePlace{App: "web", NetworkID: 1, Host: host, HostID: hostID},
			Field: 1, Address: sixpn.MachineAddr(1, hostID, 1), MachineAttrs: &catalog.MachineAttrs{State: "started"}}}
}

func orgs(n int, version uint64) []*catalog.Record {
	var rs []*catalog.Record
	for i := 0; i < n; i++ {
		rs = append(rs, org(fmt.Sprintf("o%d", i), version))
	}
	return rs
}

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}
