package mesh

import (
	"context"
	"net/http"
	"testing"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestCreatesAreIdempotent: a create retried with the same request id — after an
// agent crash that left it unclear whether the first attempt happened — returns the
// first result instead of creating twice.
func TestCreatesAreIdempotent(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	h0.Orgs.Create(ctx, "acme")
	a1, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: "", RequestID: "req-app-1"})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: "", RequestID: "req-app-1"})
	if err != nil || *a2 != *a1 {
		t.Fatalf("retried app create: %+v %v, want %+v", a2, err, a1)
	}
	c.waitConverged()
	// The retry may land on another agent.
	if a3, err := h1.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: "", RequestID: "req-app-1"}); err != nil || *a3 != *a1 {
		t.Fatalf("retry on another host: %+v %v", a3, err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: "", RequestID: "req-app-2"}); StatusCode(err) != http.StatusConflict {
		t.Fatalf("another request for the same name: %v, want a conflict", err)
	}

	m1, err := h1.Machines.Create(ctx, MachineSpec{App: "web", RequestID: "req-m-1"})
	if err != nil {
		t.Fatal(err)
	}
	// The agent dies right after the create was made durable; the client saw EOF.
	h1.Close()
	h1b := c.start("h1", testKey, h1.dir, h1.ip, c.joinAddr(h0))
	c.hosts[1] = h1b
	m2, err := h1b.Machines.Create(ctx, MachineSpec{App: "web", RequestID: "req-m-1"})
	if err != nil || m2.ID != m1.ID || m2.Address != m1.Address {
		t.Fatalf("retried machine create: %+v %v, want machine %s", m2, err, m1.ID)
	}
	c.waitConverged()
	if ms, _ := h0.Machines.List("acme", "web"); len(ms) != 1 {
		t.Fatalf("%d machines after a retried create, want 1", len(ms))
	}
	m3, err := h1b.Machines.Create(ctx, MachineSpec{App: "web", RequestID: "req-m-2"})
	if err != nil || m3.ID == m1.ID {
		t.Fatalf("a new request made no new machine: %+v %v", m3, err)
	}
	if _, err := h1b.Machines.Action(ctx, m1.ID, "destroy"); err != nil {
		t.Fatal(err)
	}
	if _, err := h1b.Machines.Create(ctx, MachineSpec{App: "web", RequestID: "req-m-1"}); StatusCode(err) != http.StatusConflict {
		t.Fatalf("retry of a create whose machine was destroyed since: %v, want a conflict", err)
	}
	if _, err := h1b.Machines.Create(ctx, MachineSpec{App: "web", RequestID: "bad id!"}); StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("invalid request id: %v", err)
	}
	if r := h0.cat.ByRequest(catalog.KindMachine, "req-m-2"); r == nil || r.Key != m3.ID {
		t.Fatalf("request index on another host: %+v", r)
	}
}
