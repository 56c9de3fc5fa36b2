package loopback

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCLIAgainstAgent: the CLI polish that needs a running agent — machines show,
// global flags after the command, the IPv6-only hint of dig, and invitation
// commands in a cluster without gateways.
func TestCLIAgainstAgent(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.startN("ord")[0]
	a.must("orgs", "create", "acme")
	a.must("apps", "create", "web", "--org", "acme")
	var m machine
	a.mustJSON(&m, "machines", "create", "--app", "web", "--service", "http:tcp:8080", "--metadata", "role=primary")

	t.Run("machines show", func(t *testing.T) {
		// --agent after the command and its argument.
		r := run(t, "machines", "show", m.ID, "--agent", a.sock)
		if r.code != 0 {
			t.Fatalf("machines show: %s", r)
		}
		for _, want := range []string{"id         " + m.ID, "app        web (org acme, network default)", "address    " + m.Address,
			"state      started", "services   http:tcp:8080", "metadata   role=primary"} {
			if !strings.Contains(r.stdout, want+"\n") {
				t.Errorf("machines show lacks %q:\n%s", want, r.stdout)
			}
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(a.must("machines", "show", m.ID, "--json")), &obj); err != nil || obj["id"] != m.ID || obj["address"] != m.Address {
			t.Errorf("machines show --json: %v %v", obj, err)
		}
		if r := a.cli("machines", "show", "0123456789abcd"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("machines show of an unknown id: %s", r)
		}
	})

	t.Run("dig A on an IPv6-only name hints at AAAA", func(t *testing.T) {
		r := a.cli("dig", "--org", "acme", "web.internal", "A")
		if r.code != 0 || !strings.Contains(r.stderr, "6PN is IPv6-only") || !strings.Contains(r.stderr, "web.internal AAAA") {
			t.Errorf("dig web.internal A: %s", r)
		}
		for _, args := range [][]string{{"web.internal"}, {"nope.internal", "A"}} {
			r := a.cli(append([]string{"dig", "--org", "acme"}, args...)...)
			if r.code != 0 || strings.Contains(r.stderr, "IPv6-only") {
				t.Errorf("dig %v printed the hint: %s", args, r)
			}
		}
	})

	t.Run("invitations without a gateway", func(t *testing.T) {
		if r := a.cli("wireguard", "invite", "acme", "", "alice"); r.code != 1 || !strings.Contains(r.stderr, "no live gateway") {
			t.Errorf("invite without gateways: %s", r)
		}
		if r := a.cli("wireguard", "invite", "acme", "", "alice", "--expires", "7x"); r.code != 2 || !strings.Contains(r.stderr, "--expires") {
			t.Errorf("invite --expires 7x: %s", r)
		}
		if r := a.cli("wireguard", "invite", "acme", "", "alice", "--dns", "most"); r.code != 2 || !strings.Contains(r.stderr, "full, split or none") {
			t.Errorf("invite --dns most: %s", r)
		}
		if out := a.must("wireguard", "list", "--json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("wireguard list --json: %q", out)
		}
		if r := a.cli("wireguard", "remove", "acme", "alice"); r.code != 1 || !strings.Contains(r.stderr, "no peer and no pending invitation") {
			t.Errorf("remove of nothing: %s", r)
		}
		if r := run(t, "wireguard", "join", "dwinv1_AAAA", "-"); r.code != 1 || !strings.Contains(r.stderr, "invalid invite code") {
			t.Errorf("join with a garbage code: %s", r)
		}
	})
}
