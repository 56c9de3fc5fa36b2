package mesh

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestHealthWrites: checks given at create start unknown; the owner's transitions
// reach every host (and survive the owner's restart); a transition for checks the
// machine no longer runs, or from another host, is dropped; stop and start check
// anew; app settings are updated anywhere and reach everywhere.
func TestHealthWrites(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: "", RequestID: "", Settings: AppSettings{WhenNoneHealthy: "sometimes"}}); StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("bad when_none_healthy: %v", err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: "", RequestID: "", Settings: AppSettings{WhenNoneHealthy: catalog.WhenNoneNone}}); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	for _, bad := range [][]catalog.Check{
		{{Kind: "udp", Target: "53"}},
		{{Kind: "tcp", Target: "0"}},
		{{Kind: "http", Target: "80", Timeout: catalog.Duration(time.Minute)}},
		{{Kind: "tcp", Target: "80", Status: catalog.HealthPassing}},
		make([]catalog.Check, catalog.MaxChecks+1),
	} {
		if _, err := h1.Machines.Create(ctx, MachineSpec{App: "web", Checks: bad}); StatusCode(err) != http.StatusBadRequest {
			t.Errorf("checks %+v: %v, want 400", bad, err)
		}
	}
	m, err := h1.Machines.Create(ctx, MachineSpec{App: "web", Checks: []catalog.Check{{Kind: "HTTP", Target: "8080/healthz"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Health != catalog.HealthUnknown || m.Checks[0].Kind != "http" || m.Checks[0].Status != catalog.HealthUnknown {
		t.Fatalf("new machine: %+v", m.MachineAttrs)
	}
	c.waitConverged()
	now := time.Now().UTC().Truncate(time.Second)
	crit := []catalog.Check{{Kind: "http", Target: "8080/healthz", Status: catalog.HealthCritical, Output: "HTTP 503", CheckedAt: &now}}
	// Only the owner writes; another host's call is a no-op.
	if err := h0.Machines.SetHealth(m.ID, crit); err != nil {
		t.Fatal(err)
	}
	if got, _ := h0.Machines.Get(m.ID); got.Health != catalog.HealthUnknown {
		t.Fatalf("a host that does not run the machine wrote its health: %+v", got.MachineAttrs)
	}
	if err := h1.Machines.SetHealth(m.ID, crit); err != nil {
		t.Fatal(err)
	}
	c.eventually(5*time.Second, "the transition everywhere", func() bool {
		got, _ := h0.Machines.Get(m.ID)
		return got != nil && got.Health == catalog.HealthCritical && got.Checks[0].Output == "HTTP 503"
	})
	// A transition for other checks (the machine's changed meanwhile) is dropped.
	if err := h1.Machines.SetHealth(m.ID, []catalog.Check{{Kind: "tcp", Target: "1", Status: catalog.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := h1.Machines.Get(m.ID); got.Health != catalog.HealthCritical {
		t.Fatalf("a transition for other checks was written: %+v", got.MachineAttrs)
	}
	// Stop checks anew: unknown.
	if _, err := h0.Machines.Action(ctx, m.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	if got, _ := h1.Machines.Get(m.ID); got.Health != catalog.HealthUnknown || got.Checks[0].Status != catalog.HealthUnknown {
		t.Fatalf("after stop: %+v", got.MachineAttrs)
	}
	if err := h1.Machines.SetHealth(m.ID, crit); err != nil {
		t.Fatal(err)
	}
	if got, _ := h1.Machines.Get(m.ID); got.Health != catalog.HealthUnknown {
		t.Fatalf("a stopped machine's health was written: %+v", got.MachineAttrs)
	}
	// The app's setting, changed on the other host.
	a, err := h1.Apps.Update(ctx, "acme", "web", AppSettings{WhenNoneHealthy: catalog.WhenNoneAll})
	if err != nil || a.WhenNoneHealthy != "" {
		t.Fatalf("update: %+v %v", a, err)
	}
	c.eventually(5*time.Second, "the app update everywhere", func() bool {
		r := h0.Snapshot().Apps["acme/web"]
		return r != nil && r.FailOpen()
	})
	if _, err := h0.Apps.Update(ctx, "acme", "nope", AppSettings{}); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("update of a missing app: %v", err)
	}
	// The owner restarts: what it wrote is on its disk.
	if _, err := h1.Machines.Action(ctx, m.ID, "start"); err != nil {
		t.Fatal(err)
	}
	if err := h1.Machines.SetHealth(m.ID, crit); err != nil {
		t.Fatal(err)
	}
	h1.Close()
	h1b := c.start("h1", testKey, h1.dir, h1.ip, c.joinAddr(h0))
	c.hosts[1] = h1b
	if got, _ := h1b.Machines.Get(m.ID); got == nil || got.Health != catalog.HealthCritical || got.Checks[0].CheckedAt == nil || !got.Checks[0].CheckedAt.Equal(now) {
		t.Fatalf("after restart: %+v", got)
	}
}
