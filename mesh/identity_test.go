package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func (c *cluster) joinAddr(h *testHost) []string {
	a, p := h.gossip.LocalAddr()
	return []string{fmt.Sprintf("%s:%d", a, p)}
}

func member(h *testHost, name string) *MemberInfo {
	for _, m := range h.Members.List() {
		if m.Name == name {
			return &m
		}
	}
	return nil
}

// startRefused starts a host that the cluster should refuse and returns why it
// stopped: either Start fails, or (when nobody answered its identity check in time)
// the node stops itself once the records arrive.
func (c *cluster) startRefused(name, dir, ip string) error {
	c.t.Helper()
	h, err := c.tryStart(name, testKey, dir, ip, c.joinAddr(c.hosts[0]))
	if err != nil {
		return err
	}
	defer h.Close()
	select {
	case <-h.Fatal():
		return h.Err()
	case <-time.After(10 * time.Second):
		return nil
	}
}

// reimage stops h without leaving (a crash or power-off) and starts the same name on
// an empty data dir, as an operator does after re-imaging a host.
func (c *cluster) reimage(i int, waitFailed bool) (old, fresh *testHost) {
	c.t.Helper()
	old = c.hosts[i]
	old.Close()
	if waitFailed {
		c.eventually(10*time.Second, "old incarnation failed", func() bool { return c.hosts[0].cat.Status(old.name) == catalog.StatusFailed })
	}
	fresh = c.start(old.name, testKey, c.t.TempDir(), old.ip, c.joinAddr(c.hosts[0]))
	c.hosts[i] = fresh
	return old, fresh
}

// TestReimageSupersedes: a host started under a known name on an empty data dir
// replaces the old incarnation on every host — members show the new id and key, the
// old incarnation's machines are tombstoned, and new machines work — whether the old
// one was already detected as failed or not, every run.
func TestReimageSupersedes(t *testing.T) {
	for _, waitFailed := range []bool{false, true} {
		for run := 0; run < 2; run++ {
			t.Run(fmt.Sprintf("waitFailed=%v/%d", waitFailed, run), func(t *testing.T) {
				c := newCluster(t, 3)
				ctx := context.Background()
				h0 := c.hosts[0]
				if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
					t.Fatal(err)
				}
				if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); err != nil {
					t.Fatal(err)
				}
				c.waitConverged()
				// Some history under the name first, so the old record carries a
				// high Lamport clock and the fresh host's first stamps are lower.
				for i := 0; i < 5; i++ {
					if _, err := c.hosts[2].Machines.Create(ctx, MachineSpec{App: "web"}); err != nil {
						t.Fatal(err)
					}
				}
				c.waitConverged()
				oldMachines, _ := c.hosts[2].Machines.List("", "web")
				old, fresh := c.reimage(2, waitFailed)
				newKey := fresh.PrivateKey().PublicKey().String()
				if fresh.HostID() == old.HostID() {
					t.Fatal("re-imaged host kept the old id")
				}
				c.eventually(10*time.Second, "every host sees the new incarnation", func() bool {
					for _, h := range c.hosts {
						m := member(h, "h2")
						if m == nil || m.HostID != fresh.HostID() || m.PublicKey != newKey {
							return false
						}
					}
					return true
				})
				c.eventually(10*time.Second, "old incarnation's machines tombstoned", func() bool {
					for _, h := range c.hosts {
						for _, m := range oldMachines {
							if m.Host == "h2" {
								if _, err := h.Machines.Get(m.ID); err == nil {
									return false
								}
							}
						}
					}
					return true
				})
				m, err := fresh.Machines.Create(ctx, MachineSpec{App: "web"})
				if err != nil {
					t.Fatal(err)
				}
				if m.HostID != fresh.HostID() {
					t.Fatalf("new machine has host id %08x, want %08x", m.HostID, fresh.HostID())
				}
				c.waitConverged()
				for _, h := range c.hosts {
					if v := h.Snapshot().HostsByID[old.HostID()]; v != nil {
						t.Fatalf("%s still routes the old incarnation %08x", h.name, old.HostID())
					}
				}
				// The old disk, started again, must not take the name back.
				// (memberlist may also refuse it outright while the new incarnation is
				// alive under the name at another address; then it is never admitted.)
				if err := c.startRefused("h2", old.dir, "127.0.99.1"); err != nil && !errors.Is(err, ErrSuperseded) {
					t.Fatalf("old incarnation restarted: err = %v, want ErrSuperseded", err)
				}
				c.waitConverged()
				if m := member(h0, "h2"); m == nil || m.HostID != fresh.HostID() {
					t.Fatalf("members after the old disk came back: %+v", m)
				}
			})
		}
	}
}

// TestRemovedHostNeverHalfAdmitted: `members remove` of a failed host tombstones it
// and its machines everywhere; if it never returns that is the end of it, and if it
// is started again on its data dir it refuses to run (ErrRemoved) instead of running
// as a zombie missing from members.
func TestRemovedHostNeverHalfAdmitted(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	h0, h1, h2 := c.hosts[0], c.hosts[1], c.hosts[2]
	h0.Orgs.Create(ctx, "acme")
	h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""})
	c.waitConverged()
	m, err := h2.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	h2.Close()
	c.eventually(10*time.Second, "h2 failed", func() bool { return h0.cat.Status("h2") == catalog.StatusFailed })
	if err := h0.Members.Remove(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(h0, h1)
	for _, h := range []*testHost{h0, h1} {
		if member(h, "h2") != nil {
			t.Fatalf("%s still lists h2", h.name)
		}
		if _, err := h.Machines.Get(m.ID); err == nil {
			t.Fatalf("%s still has h2's machine", h.name)
		}
	}
	// Started where it cannot reach the cluster, it cannot learn it was removed: it
	// must not acknowledge anything meanwhile (that would be lost when it learns).
	c.preBlock = []string{h0.ip, h1.ip}
	cut, err := c.tryStart("h2", testKey, h2.dir, h2.ip, c.joinAddr(h0))
	c.preBlock = nil
	if err != nil {
		t.Fatalf("start cut off: %v", err)
	}
	if _, err := cut.Machines.Create(ctx, MachineSpec{App: "web"}); StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("a host that has not reached its cluster since it started acknowledged a create: %v", err)
	}
	cut.Close()
	if err := c.startRefused("h2", h2.dir, h2.ip); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed host restarted with its data dir: err = %v, want ErrRemoved", err)
	}
	c.waitConverged(h0, h1)
	for _, h := range []*testHost{h0, h1} {
		if member(h, "h2") != nil {
			t.Fatalf("%s lists the removed host again", h.name)
		}
	}
	// Wiping the data dir is the way back: a new host under the old name.
	h2b := c.start("h2", testKey, t.TempDir(), h2.ip, c.joinAddr(h0))
	c.hosts[2] = h2b
	c.eventually(10*time.Second, "new host under the removed name", func() bool {
		mi := member(h0, "h2")
		return mi != nil && mi.HostID == h2b.HostID() && mi.Status == catalog.StatusAlive
	})
	c.waitConverged() // the new host has the catalog (the app) before it creates
	if _, err := h2b.Machines.Create(ctx, MachineSpec{App: "web"}); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
}

// TestRestartedHostWritesOnceItReachesItsCluster: a host restarted without --join
// (the cluster's first host) that cannot reach the others yet acknowledges nothing
// until it has heard from them, then works as before.
func TestRestartedHostWritesOnceItReachesItsCluster(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	h0.Close()
	c.preBlock = []string{h1.ip}
	h0b, err := c.tryStart("h0", testKey, h0.dir, h0.ip, nil)
	c.preBlock = nil
	if err != nil {
		t.Fatal(err)
	}
	c.hosts[0] = h0b
	if _, err := h0b.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("create before reaching the cluster: %v, want 503", err)
	}
	h0b.blocked.Delete(h1.ip)
	select {
	case <-h0b.adm.opened:
	case <-time.After(15 * time.Second):
		t.Fatal("the gate did not open within 15 s of the cluster becoming reachable")
	}
	if _, err := h0b.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); err != nil {
		t.Fatalf("write refused once the cluster answered: %v", err)
	}
	c.waitConverged()
}
