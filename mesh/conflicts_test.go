package mesh

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestAppNamesUniquePerOrg: two orgs may both have "web"; naming it without an org
// is then a usage error that asks for --org.
func TestAppNamesUniquePerOrg(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	for _, org := range []string{"acme", "globex"} {
		if _, err := h0.Orgs.Create(ctx, org); err != nil {
			t.Fatal(err)
		}
		c.waitConverged()
		if _, err := h1.Apps.Create(ctx, AppSpec{Name: "web", Org: org, Network: ""}); err != nil {
			t.Fatalf("app web in %s: %v", org, err)
		}
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); StatusCode(err) != http.StatusConflict {
		t.Fatalf("second web in acme: %v", err)
	}
	c.waitConverged()
	if _, err := h0.Machines.Create(ctx, MachineSpec{App: "web"}); StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("ambiguous app name: err = %v, want a usage error", err)
	}
	if _, err := h0.Machines.List("", "web"); StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("ambiguous list: %v", err)
	}
	if err := h0.Apps.Remove(ctx, "", "web"); StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("ambiguous remove: %v", err)
	}
	ma, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	mg, err := h1.Machines.Create(ctx, MachineSpec{App: "web", Org: "globex"})
	if err != nil {
		t.Fatal(err)
	}
	if ma.NetworkID == mg.NetworkID || ma.Org != "acme" || mg.Org != "globex" {
		t.Fatalf("machines in the wrong place: %+v %+v", ma, mg)
	}
	c.waitConverged()
	snap := h1.Snapshot()
	for _, org := range []string{"acme", "globex"} {
		if a := snap.Apps[catalog.AppKey(org, "web")]; a == nil || len(a.Machines) != 1 {
			t.Fatalf("%s/web: %+v", org, a)
		}
	}
	if list, err := h1.Machines.List("globex", "web"); err != nil || len(list) != 1 || list[0].ID != mg.ID {
		t.Fatalf("globex web machines: %v %v", list, err)
	}
	if err := h1.Apps.Remove(ctx, "globex", "web"); StatusCode(err) != http.StatusConflict {
		t.Fatalf("remove app with a machine: %v", err)
	}
	if _, err := h1.Machines.Action(ctx, mg.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	if err := h1.Apps.Remove(ctx, "globex", "web"); err != nil {
		t.Fatal(err)
	}
	// Now the name is unambiguous again.
	if _, err := h1.Machines.Create(ctx, MachineSpec{App: "web"}); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionAppConflictConverges: the same app name created in one org on both
// sides of a partition converges to one winner; the loser's machines (same network)
// end up in the winner, nothing is orphaned, and the resolution is counted.
func TestPartitionAppConflictConverges(t *testing.T) {
	c, h0, h1, h2 := cutOffThird(t)
	ctx := context.Background()
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "dg1", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Apps.Create(ctx, AppSpec{Name: "dg1", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(h0, h1)
	m0, err := h1.Machines.Create(ctx, MachineSpec{App: "dg1"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := h2.Machines.Create(ctx, MachineSpec{App: "dg1"})
	if err != nil {
		t.Fatal(err)
	}
	c.heal(h2, h0)
	c.heal(h2, h1)
	c.waitConverged()
	counted := 0.0
	for _, h := range c.hosts {
		snap := h.Snapshot()
		a := snap.Apps[catalog.AppKey("acme", "dg1")]
		if a == nil || a.Machine(m0.ID) == nil || a.Machine(m2.ID) == nil {
			t.Fatalf("%s: dg1 after heal = %+v, want both machines in it", h.name, a)
		}
		nv := snap.Networks[a.NetworkID]
		if nv == nil || nv.Apps["dg1"] != a {
			t.Fatalf("%s: dg1 not in its network's view (DNS)", h.name)
		}
		counted += testutil.ToFloat64(h.metrics.conflicts.WithLabelValues("app"))
	}
	if counted == 0 {
		t.Fatal("conflict resolution was not counted on any host")
	}
}
