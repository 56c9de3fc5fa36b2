package mesh

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
)

// TestQuotasAtTheDoor is issue 21 item 3 at an agent's door: over a per-org limit
// (apps, machines, DNS records) or a per-machine one (services), a create is refused
// with 403 naming the limit and the current count, and nothing is written.
func TestQuotasAtTheDoor(t *testing.T) {
	c := newClusterWith(t, 1, 0, map[string]quota.Limits{"h0": {Apps: 2, Machines: 2, DNSRecords: 1, ServicesPerMachine: 3}})
	h := c.hosts[0]
	ctx := context.Background()
	if _, err := h.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error, words ...string) {
		t.Helper()
		if err == nil || StatusCode(err) != http.StatusForbidden {
			t.Fatalf("%s: %v (status %d), want 403", what, err, StatusCode(err))
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", what, err, w)
			}
		}
	}
	for _, a := range []string{"web", "api"} {
		if _, err := h.Apps.Create(ctx, AppSpec{Name: a, Org: "acme", Network: ""}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.Apps.Create(ctx, AppSpec{Name: "db", Org: "acme", Network: ""})
	refused("third app", err, "org acme has 2 apps", "limit is 2")
	if n := len(h.cat.List(catalog.KindApp)); n != 2 {
		t.Errorf("%d apps after the refusal", n)
	}

	svcs := func(n int) []catalog.Service {
		var s []catalog.Service
		for i := 0; i < n; i++ {
			s = append(s, catalog.Service{Name: fmt.Sprintf("s%d", i), Proto: "tcp", Port: uint16(8000 + i)})
		}
		return s
	}
	_, err = h.Machines.Create(ctx, MachineSpec{App: "web", Org: "acme", Services: svcs(4)})
	refused("4 services", err, "4 services", "limit is 3")
	for i := 0; i < 2; i++ {
		if _, err := h.Machines.Create(ctx, MachineSpec{App: "web", Org: "acme", Services: svcs(3)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = h.Machines.Create(ctx, MachineSpec{App: "api", Org: "acme"})
	refused("third machine", err, "org acme has 2 machines", "limit is 2")
	if n := len(h.cat.List(catalog.KindMachine)); n != 2 {
		t.Errorf("%d machines after the refusals", n)
	}

	if _, err := h.DNSRecords.Add(ctx, DNSRecordSpec{Org: "acme", Name: "a", Type: "TXT", Value: "x"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.DNSRecords.Add(ctx, DNSRecordSpec{Org: "acme", Name: "b", Type: "TXT", Value: "y"})
	refused("second DNS record", err, "1 DNS records", "limit is 1")
}

// TestQuotasOnGossipInput: a host refuses records over its per-record limits from
// other hosts (whatever those hosts allowed), and takes the rest.
func TestQuotasOnGossipInput(t *testing.T) {
	c := newClusterWith(t, 2, 0, map[string]quota.Limits{"h1": {ServicesPerMachine: 2}})
	h0, h1 := c.hosts[0], c.hosts[1]
	ctx := context.Background()
	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	big, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Org: "acme", Services: []catalog.Service{
		{Name: "a", Proto: "tcp", Port: 1}, {Name: "b", Proto: "tcp", Port: 2}, {Name: "c", Proto: "tcp", Port: 3}}})

	if err != nil {
		t.Fatal(err)
	}
	small, err := h0.Machines.Create(ctx, MachineSpec{App: "web", Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, "the small machine reaches h1", func() bool {
		return h1.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: small.ID}) != nil
	})
	time.Sleep(time.Second) // anti-entropy rounds that would carry the big one
	if h1.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: big.ID}) != nil {
		t.Fatal("h1 took a machine with 3 services over its limit of 2")
	}
}
