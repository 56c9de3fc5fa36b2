package loopback

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterCore: three agents as separate processes converge on one catalog, keep
// identity and machines across kill -9, refuse a host with another gossip key, map
// errors to SPEC §7 exit codes, refuse a second agent on a data dir, and leave on
// SIGTERM.
func TestClusterCore(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	as := c.startN("ord", "ams", "fra")
	a1, a2, a3 := as[0], as[1], as[2]

	// Org and app on agent 1.
	if out := a1.must("orgs", "create", "acme"); !strings.Contains(out, "created org acme") {
		t.Errorf("orgs create: unexpected output %q", out)
	}
	a1.must("apps", "create", "web", "--org", "acme")
	// The create returns once its arbiters hold it (here every agent); the others, in
	// a larger cluster, get it from the broadcast tree moments later.
	for _, a := range as {
		a := a
		eventually(t, 2*time.Second, func() (bool, string) {
			out := a.must("apps", "list", "--json")
			return strings.Contains(out, `"name": "web"`), a.name + ": " + out
		})
	}

	// One machine on each agent (machines run on the host whose agent creates them).
	created := map[string]machine{}
	var lastCreate time.Time
	for _, a := range as {
		var m machine
		a.mustJSON(&m, "machines", "create", "--app", "web", "--service", "http:tcp:8080", "--metadata", "role=primary")
		lastCreate = time.Now()
		if m.Host != a.name || m.Region != a.region || m.State != "started" || len(m.ID) != 14 || !strings.HasPrefix(m.Address, "fdaa:") {
			t.Errorf("%s: machines create --json = %+v", a.name, m)
		}
		created[m.ID] = m
	}
	// machines list --json is byte-identical on all three within 1 s of the last
	// create returning.
	list := waitSameList(t, as, 3, 5*time.Second)
	took := time.Since(lastCreate)
	if took > time.Second {
		t.Errorf("machines list converged %v after the last create returned; want ≤ 1s", took)
	}
	t.Logf("machines list identical on 3 agents %v after the last create", took)

	t.Run("exit codes", func(t *testing.T) {
		cases := []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"orgs", "create", "Bad_Org"}, 2, `invalid org slug "Bad_Org"`},
			{[]string{"apps", "create", "web_1", "--org", "acme"}, 2, `invalid app name "web_1"`},
			{[]string{"apps", "create", "web"}, 2, "missing required flag --org"},
			{[]string{"machines", "create"}, 2, "missing required flag --app"},
			{[]string{"orgs", "create"}, 2, "usage: dogwood orgs create SLUG"},
			{[]string{"machines", "create", "--app", "web", "--metadata", "role"}, 2, "KEY=VALUE"},
			{[]string{"machines", "create", "--app", "web", "--service", "http:sctp:80"}, 2, "protocol must be tcp or udp"},
			{[]string{"machines", "create", "--app", "web", "--region", "zzz"}, 2, `run the command on a host in region "zzz"`},
			{[]string{"machines", "stop", "not-an-id"}, 2, "14 lowercase hex digits"},
			{[]string{"no-such-command"}, 2, "unknown command"},
			// Unknown objects: the input was valid, the operation failed (SPEC §7: 1).
			{[]string{"apps", "create", "api", "--org", "nope"}, 1, `org "nope" not found`},
			{[]string{"machines", "create", "--app", "nope"}, 1, `app "nope" not found`},
			{[]string{"machines", "stop", "0123456789abcd"}, 1, "not found"},
			{[]string{"dig", "--org", "nope", "web.internal"}, 1, `org "nope" not found`},
			// Duplicates: 1, on the creating agent and on any other.
			{[]string{"orgs", "create", "acme"}, 1, `org "acme" already exists`},
			{[]string{"apps", "create", "web", "--org", "acme"}, 1, `app "web" already exists`},
		}
		for _, tc := range cases {
			for _, a := range []*agent{a1, a3} {
				r := a.cli(tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
					t.Errorf("%s: dogwood %s: want exit %d and %q on stderr, got %s", a.name, strings.Join(tc.args, " "), tc.code, tc.msg, r)
				}
			}
		}
		// No agent: 1 with a hint, no hang.
		r := run(t, "--agent", filepath.Join(c.sockDir, "none.sock"), "orgs", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "no agent is running") {
			t.Errorf("orgs list without an agent: %s", r)
		}
		// Nothing above changed the catalog.
		if got := a2.must("machines", "list", "--json"); got != list {
			t.Errorf("failed commands changed the machine list:\n%s", got)
		}
	})

	t.Run("second agent on the same data dir", func(t *testing.T) {
		dup := *a1
		dup.gossipPort, dup.dnsPort = freePort(t), freePort(t)
		dup.sock = filepath.Join(c.sockDir, "dup.sock")
		dup.join = nil
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		start := time.Now()
		out, err := exec.CommandContext(ctx, dogwoodBin(t), dup.args()...).CombinedOutput()
		took := time.Since(start)
		var ee *exec.ExitError
		if ctx.Err() != nil {
			t.Fatalf("second agent on %s did not exit (hang?)", a1.dataDir)
		}
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("second agent on the same data dir: want a non-zero exit, got %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "in use by another dogwood agent") || strings.Contains(string(out), "goroutine ") {
			t.Errorf("second agent: want a clear 'in use' message, got:\n%s", out)
		}
		if took > 5*time.Second {
			t.Errorf("second agent took %v to give up", took)
		}
		// The first agent is unharmed.
		if got := a1.must("machines", "list", "--json"); got != list {
			t.Errorf("agent 1 changed after the refused second agent:\n%s", got)
		}
	})

	t.Run("kill -9 and restart keeps identity and machines", func(t *testing.T) {
		type status struct {
			Name   string `json:"name"`
			HostID uint32 `json:"host_id"`
			Region string `json:"region"`
		}
		var before, after status
		a2.mustJSON(&before, "status")
		// An acknowledged create is on disk: kill -9 right after it returns.
		var fresh machine
		a2.mustJSON(&fresh, "machines", "create", "--app", "web", "--process-group", "worker")
		a2.kill9()
		created[fresh.ID] = fresh
		a2.start()
		a2.mustJSON(&after, "status")
		if after != before || after.HostID == 0 {
			t.Errorf("status after kill -9 and restart = %+v, before = %+v", after, before)
		}
		// Same machines with the same addresses, straight from its data dir.
		var ms []machine
		a2.mustJSON(&ms, "machines", "list")
		if len(ms) != len(created) {
			t.Errorf("after restart %s lists %d machines, want %d: %+v", a2.name, len(ms), len(created), ms)
		}
		for _, m := range ms {
			if want, ok := created[m.ID]; !ok || want.Address != m.Address || want.Host != m.Host || want.State != m.State {
				t.Errorf("machine %s after restart: %+v, created as %+v", m.ID, m, want)
			}
		}
		// It is back in the cluster: alive everywhere, and still converged.
		c.waitMembers(as, 15*time.Second)
		list = waitSameList(t, as, len(created), 5*time.Second)
	})

	t.Run("foreign gossip key cannot join", func(t *testing.T) {
		a4 := c.add("h4", "lhr")
		a4.keyFile = c.newKey("foreign.key")
		a4.join = []string{a1.gossipAddr()}
		a4.start()
		// Positive signal first: agent 4 did try, and agent 1 dropped its packets.
		eventually(t, 10*time.Second, func() (bool, string) {
			return strings.Count(a4.logTail(200), "join failed") >= 2, a4.logTail(10)
		})
		// Then watch for a while: nothing crosses, either way.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if got := strings.TrimSpace(a4.must("orgs", "list", "--json")); got != "[]" {
				t.Fatalf("agent with a foreign key sees orgs: %s", got)
			}
			if got := strings.TrimSpace(a4.must("machines", "list", "--json")); got != "[]" {
				t.Fatalf("agent with a foreign key sees machines: %s", got)
			}
			if ms := a4.members(); len(ms) != 1 || ms[0].Name != "h4" {
				t.Fatalf("agent with a foreign key sees members %+v", ms)
			}
			for _, a := range as {
				for _, m := range a.members() {
					if m.Name == "h4" {
						t.Fatalf("%s lists the foreign host: %+v", a.name, m)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		// And the cluster is unharmed.
		for _, a := range as {
			if got := a.must("machines", "list", "--json"); got != list {
				t.Errorf("%s: machine list changed:\n%s", a.name, got)
			}
		}
		a4.signal(syscall.SIGTERM, 10*time.Second)
	})

	t.Run("SIGTERM leaves", func(t *testing.T) {
		took := a3.signal(syscall.SIGTERM, 10*time.Second)
		if a3.exitErr != nil {
			t.Errorf("agent exit after SIGTERM: %v", a3.exitErr)
		}
		t.Logf("agent 3 exited %v after SIGTERM", took)
		for _, a := range []*agent{a1, a2} {
			a := a
			eventually(t, 3*time.Second, func() (bool, string) {
				st := a.memberStatus("h3")
				return st == "left", fmt.Sprintf("%s shows h3 as %q", a.name, st)
			})
		}
		// Its machines stay in the catalog (all. listings); the others still agree.
		if got := a1.must("machines", "list", "--json"); got != list {
			t.Errorf("machine list after h3 left:\n%s", got)
		}
	})
}

// waitSameList waits until `machines list --json` prints the same bytes on every agent,
// with n machines, and returns it.
func waitSameList(t *testing.T, as []*agent, n int, timeout time.Duration) string {
	t.Helper()
	var list string
	eventually(t, timeout, func() (bool, string) {
		outs := make([]string, len(as))
		for i, a := range as {
			outs[i] = a.must("machines", "list", "--json")
		}
		for i := range outs {
			if outs[i] != outs[0] || strings.Count(outs[i], `"id":`) != n {
				return false, fmt.Sprintf("want %d machines, identical;\n%s:\n%s\n%s:\n%s", n, as[0].name, outs[0], as[i].name, outs[i])
			}
		}
		list = outs[0]
		return true, ""
	})
	return list
}
