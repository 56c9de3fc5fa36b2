package api

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestChecksAPI: checks in a machine create as objects or in their --check
// spelling (the CNI plugin passes the same field), health spelled out in every
// machine answer, live results on the owning host, and apps' when_none_healthy.
func TestChecksAPI(t *testing.T) {
	n, _ := startNode(t)
	at := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	var live []catalog.Check // what the runner reports: for the machine created below
	s := &Server{Node: n, Version: "test", LiveChecks: func(string) []catalog.Check { return live }}
	h := s.Handler()
	for _, c := range []struct {
		call
		code int
	}{
		{call{method: "POST", path: "/v1/orgs", body: `{"slug":"acme"}`}, 201},
		{call{method: "POST", path: "/v1/apps", body: `{"name":"web","org":"acme","when_none_healthy":"maybe"}`}, 400},
		{call{method: "POST", path: "/v1/apps", body: `{"name":"web","org":"acme","when_none_healthy":"none"}`}, 201},
		{call{method: "POST", path: "/v1/apps", body: `{"name":"api","org":"acme"}`}, 201},
		{call{method: "PATCH", path: "/v1/apps/web?org=acme", body: `{"when_none_healthy":"all"}`}, 200},
		{call{method: "PATCH", path: "/v1/apps/web?org=acme", body: `{"when_none_healthy":"x"}`}, 400},
		{call{method: "PATCH", path: "/v1/apps/nope", body: `{}`}, 404},
		{call{method: "POST", path: "/v1/machines", body: `{"app":"web","checks":["udp:53"]}`}, 400},
		{call{method: "POST", path: "/v1/machines", body: `{"app":"web","checks":[{"kind":"tcp","target":"1","interval":"1ms"}]}`}, 400},
		{call{method: "POST", path: "/v1/machines", body: `{"app":"web","checks":[{"kind":"tcp","target":"1","bogus":1}]}`}, 400},
	} {
		res, b := do(t, h, c.call)
		if res.StatusCode != c.code && !(c.code == 201 && res.StatusCode == 200) {
			t.Fatalf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, res.StatusCode, b, c.code)
		}
	}
	res, b := do(t, h, call{method: "POST", path: "/v1/machines",
		body: `{"app":"web","checks":["tcp:5432",{"kind":"http","target":"8080/healthz","interval":"1s","timeout":0.5,"rise":1,"fall":2}]}`})
	if res.StatusCode != 201 {
		t.Fatalf("create with checks: %d %s", res.StatusCode, b)
	}
	var m catalog.Machine
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Health != catalog.HealthUnknown || len(m.Checks) != 2 || m.Checks[1].Interval != catalog.Duration(time.Second) ||
		m.Checks[1].Timeout != catalog.Duration(500*time.Millisecond) || m.Checks[1].Fall != 2 {
		t.Fatalf("created: %+v", m.MachineAttrs)
	}
	// The owner shows live results (of the checks the machine has).
	live = []catalog.Check{m.Checks[0].Config(), m.Checks[1].Config()}
	live[0].Status, live[0].Output, live[0].CheckedAt = catalog.HealthPassing, "connected", &at
	live[1].Status, live[1].Output, live[1].CheckedAt = catalog.HealthCritical, "HTTP 503", &at
	_, b = do(t, h, call{method: "GET", path: "/v1/machines/" + m.ID})
	json.Unmarshal(b, &m)
	if m.Checks[1].Status != catalog.HealthCritical || m.Checks[1].Output != "HTTP 503" || m.Checks[0].CheckedAt == nil {
		t.Fatalf("live view: %+v", m.Checks)
	}
	// A machine without checks passes.
	_, b = do(t, h, call{method: "POST", path: "/v1/machines", body: `{"app":"api"}`})
	m = catalog.Machine{}
	json.Unmarshal(b, &m)
	if m.Health != catalog.HealthPassing || m.Checks != nil {
		t.Fatalf("no checks: %+v", m.MachineAttrs)
	}
	var apps []catalog.App
	res, b = do(t, h, call{method: "GET", path: "/v1/apps"})
	if err := json.Unmarshal(b, &apps); err != nil || res.StatusCode != http.StatusOK || len(apps) != 2 {
		t.Fatalf("apps: %s", b)
	}
	for _, a := range apps {
		if a.WhenNoneHealthy != catalog.WhenNoneAll {
			t.Errorf("app %s: when_none_healthy %q", a.Name, a.WhenNoneHealthy)
		}
	}
}
