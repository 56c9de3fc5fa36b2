package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func tombstones(h *testHost) int {
	_, n := h.cat.Len()
	return n
}

// TestTombstonesCollected: after the horizon the catalog's size follows the live
// records, on disk too, and a collected tombstone sent again is not taken back.
func TestTombstonesCollected(t *testing.T) {
	c := newClusterTTL(t, 2, 2*time.Second)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	h0.Orgs.Create(ctx, "acme")
	h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	c.waitConverged()
	var last *catalog.Record
	for i := 0; i < 20; i++ {
		m, err := h1.Machines.Create(ctx, MachineSpec{App: "web"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h1.Machines.Action(ctx, m.ID, "destroy"); err != nil {
			t.Fatal(err)
		}
		last = h1.cat.Get(catalog.ID{Kind: catalog.KindMachine, Key: m.ID})
	}
	if last == nil || !last.Deleted || last.DeletedAt == 0 {
		t.Fatalf("tombstone without its time: %+v", last)
	}
	c.waitConverged()
	if n := tombstones(h0); n < 20 {
		t.Fatalf("%d tombstones before the horizon, want ≥ 20", n)
	}
	c.eventually(10*time.Second, "tombstones collected", func() bool { return tombstones(h0) == 0 && tombstones(h1) == 0 })
	c.waitConverged()
	if h0.cat.Apply(last) {
		t.Fatal("a collected tombstone was accepted again")
	}
	// Disk follows: a restart loads no tombstones.
	for _, r := range closedRecords(t, h1) {
		if r.Deleted && catalog.Collectable(r.Kind) {
			t.Fatalf("collected tombstone still on disk: %v", r.ID())
		}
	}
}

// TestAwayHostCannotResurrect: a host stopped for longer than the horizon still
// holds objects that were deleted meanwhile and whose tombstones are gone; when it
// returns it must not bring them back.
func TestAwayHostCannotResurrect(t *testing.T) {
	c := newClusterTTL(t, 3, 3*time.Second)
	ctx := context.Background()
	h0, h1, h2 := c.hosts[0], c.hosts[1], c.hosts[2]
	h0.Orgs.Create(ctx, "acme")
	h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	c.waitConverged()
	h1.Apps.Create(ctx, AppSpec{Name: "gone", Org: "acme", Network: ""})
	c.waitConverged()
	m, err := h0.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := h2.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	h2.Close()
	if _, err := h0.Machines.Action(ctx, m.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	if err := h1.Apps.Remove(ctx, "acme", "gone"); err != nil {
		t.Fatal(err)
	}
	c.eventually(15*time.Second, "tombstones collected", func() bool { return tombstones(h0) == 0 && tombstones(h1) == 0 })
	h2b := c.start("h2", testKey, h2.dir, h2.ip, c.joinAddr(h0))
	c.hosts[2] = h2b
	c.waitConverged()
	for _, h := range c.hosts {
		if _, err := h.Machines.Get(m.ID); err == nil {
			t.Fatalf("%s: destroyed machine came back", h.name)
		}
		if _, err := findApp(h.cat, "acme", "gone"); err == nil {
			t.Fatalf("%s: removed app came back", h.name)
		}
		if _, err := h.Machines.Get(mine.ID); err != nil {
			t.Fatalf("%s: the returning host's own machine is gone: %v", h.name, err)
		}
	}
}

// TestLongPartitionCannotResurrect: a running host cut off for longer than the
// horizon allows forgets what other hosts wrote, so after the heal it cannot push
// back an object deleted (and its tombstone collected) while it was away; its own
// machines stay.
func TestLongPartitionCannotResurrect(t *testing.T) {
	c := newClusterTTL(t, 3, 3*time.Second)
	ctx := context.Background()
	h0, h1, h2 := c.hosts[0], c.hosts[1], c.hosts[2]
	h0.Orgs.Create(ctx, "acme")
	h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	c.waitConverged()
	m, err := h0.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := h2.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	c.cut(h2, h0)
	c.cut(h2, h1)
	if _, err := h0.Machines.Action(ctx, m.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	c.eventually(15*time.Second, "tombstone collected on the majority side", func() bool { return tombstones(h0) == 0 && tombstones(h1) == 0 })
	c.eventually(15*time.Second, "the cut-off host forgot what others wrote", func() bool {
		_, err := h2.Machines.Get(m.ID)
		return err != nil
	})
	c.heal(h2, h0)
	c.heal(h2, h1)
	c.waitConverged()
	for _, h := range c.hosts {
		if _, err := h.Machines.Get(m.ID); err == nil {
			t.Fatalf("%s: destroyed machine came back after the heal", h.name)
		}
		if _, err := h.Machines.Get(mine.ID); err != nil {
			t.Fatalf("%s: the cut-off host's own machine is gone: %v", h.name, err)
		}
	}
}
