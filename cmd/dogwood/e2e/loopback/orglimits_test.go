package loopback

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

type orgJSON struct {
	Slug   string `json:"slug"`
	Limits struct {
		Machines   int      `json:"machines"`
		Apps       int      `json:"apps"`
		DNSRecords int      `json:"dns_records"`
		Peers      int      `json:"peers"`
		Overrides  []string `json:"overrides"`
	} `json:"limits"`
}

// orgLimits is org's effective limits as a's `orgs list --json` shows them.
func (a *agent) orgLimits(slug string) (orgJSON, string) {
	out := a.must("orgs", "list", "--json")
	var orgs []orgJSON
	if err := json.Unmarshal([]byte(out), &orgs); err != nil {
		a.t.Fatalf("%s: orgs list --json: %v\n%s", a.name, err, out)
	}
	for _, o := range orgs {
		if o.Slug == slug {
			return o, out
		}
	}
	return orgJSON{}, out
}

// TestOrgSetLimits: an override set on one host is enforced at another host's door,
// names the limit and the count, and raising or removing it lets creates through.
func TestOrgSetLimits(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	as := c.startN("ord", "ams")
	a1, a2 := as[0], as[1]
	a1.must("orgs", "create", "acme")

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"orgs", "set-limits", "acme"}, 2, "nothing to set"},
		{[]string{"orgs", "set-limits", "acme", "--apps", "-1"}, 2, "invalid --apps -1"},
		{[]string{"orgs", "set-limits", "acme", "--apps", "x"}, 2, "invalid value"},
		{[]string{"orgs", "set-limits", "Bad_Org", "--apps", "1"}, 2, `invalid org slug "Bad_Org"`},
		{[]string{"orgs", "set-limits", "nope", "--apps", "1"}, 1, `org "nope" not found`},
	} {
		r := a1.cli(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("dogwood %s: want exit %d with %q, got %s", strings.Join(tc.args, " "), tc.code, tc.msg, r)
		}
	}

	out := a1.must("orgs", "set-limits", "acme", "--apps", "1", "--machines", "1")
	if !strings.Contains(out, "apps 1") || !strings.Contains(out, "overrides: machines, apps") {
		t.Errorf("set-limits output: %q", out)
	}
	// Host 2 learns the override from gossip.
	eventually(t, 10*time.Second, func() (bool, string) {
		o, out := a2.orgLimits("acme")
		return o.Limits.Apps == 1 && o.Limits.Machines == 1 && slices.Equal(o.Limits.Overrides, []string{"machines", "apps"}), out
	})

	a2.must("apps", "create", "web", "--org", "acme")
	r := a2.cli("apps", "create", "api", "--org", "acme")
	if r.code != 1 || !strings.Contains(r.stderr, "org acme has 1 apps, the limit is 1") || !strings.Contains(r.stderr, "orgs set-limits acme --apps") {
		t.Errorf("apps create over the override on h2: %s", r)
	}
	if out := a2.must("apps", "list", "--org", "acme", "--json"); strings.Contains(out, "dogwood.limits") || strings.Contains(out, `"api"`) {
		t.Errorf("apps list shows the limits carrier or a refused app: %s", out)
	}
	a2.must("machines", "create", "--app", "web")
	r = a2.cli("machines", "create", "--app", "web")
	if r.code != 1 || !strings.Contains(r.stderr, "org acme has 1 machines, the limit is 1") {
		t.Errorf("machines create over the override on h2: %s", r)
	}

	// Raising on host 1 lets host 2 create; 0 gives the default back.
	a1.must("orgs", "set-limits", "acme", "--apps", "2", "--machines", "0")
	eventually(t, 10*time.Second, func() (bool, string) {
		o, out := a2.orgLimits("acme")
		return o.Limits.Apps == 2 && o.Limits.Machines == 10000 && slices.Equal(o.Limits.Overrides, []string{"apps"}), out
	})
	a2.must("apps", "create", "api", "--org", "acme")
	a2.must("machines", "create", "--app", "web")
	// Both hosts agree on the record.
	eventually(t, 10*time.Second, func() (bool, string) {
		o1, _ := a1.orgLimits("acme")
		o2, _ := a2.orgLimits("acme")
		return fmt.Sprint(o1) == fmt.Sprint(o2), fmt.Sprint(o1, o2)
	})

	// An org with an override and nothing else can be removed (the carrier goes with
	// it), and one created again under the same slug starts from the defaults.
	a1.must("orgs", "create", "solo")
	a1.must("orgs", "set-limits", "solo", "--peers", "3")
	a1.must("orgs", "remove", "solo")
	a2.must("orgs", "create", "solo")
	eventually(t, 10*time.Second, func() (bool, string) {
		o, out := a1.orgLimits("solo")
		return o.Slug == "solo" && len(o.Limits.Overrides) == 0 && o.Limits.Peers == 1000, out
	})
}

// TestOrgLimitsMixedVersions: an org's overrides set on this release reach an agent
// of the previous release in a record it keeps and forwards (it drops nothing as
// invalid, catalogs agree), and a new agent that learns the catalog from the old
// one alone enforces them.
func TestOrgLimitsMixedVersions(t *testing.T) {
	old := prevBin(t)
	c := newCluster(t)
	h1 := c.add("h1", "ord")
	h1.bin = old
	h1.start()
	h2 := c.add("h2", "ord")
	h2.start()
	c.waitMembers([]*agent{h1, h2}, 20*time.Second)

	h2.must("orgs", "create", "acme")
	h2.must("orgs", "set-limits", "acme", "--apps", "1")
	eventually(t, 10*time.Second, func() (bool, string) {
		r := h1.cli("apps", "list")
		return r.code == 0 && strings.Contains(r.stdout, "dogwood.limits"), r.String()
	})
	eventually(t, 20*time.Second, func() (bool, string) {
		a, b := catalogHeaders(t, h1), catalogHeaders(t, h2)
		return strings.Join(a, "\n") == strings.Join(b, "\n"), fmt.Sprintf("h1 %d records, h2 %d", len(a), len(b))
	})
	if strings.Contains(readFile(h1.log), "invalid_record") {
		t.Errorf("the old agent dropped records as invalid:\n%s", h1.logTail(40))
	}

	h2.signal(syscall.SIGTERM, 10*time.Second)
	h3 := c.add("h3", "ams")
	h3.start()
	eventually(t, 20*time.Second, func() (bool, string) {
		o, out := h3.orgLimits("acme")
		return o.Limits.Apps == 1 && slices.Equal(o.Limits.Overrides, []string{"apps"}), out
	})
	h3.must("apps", "create", "web", "--org", "acme")
	if r := h3.cli("apps", "create", "api", "--org", "acme"); r.code != 1 || !strings.Contains(r.stderr, "org acme has 1 apps, the limit is 1") {
		t.Errorf("h3 (catalog from the old agent) did not enforce the override: %s", r)
	}
}
