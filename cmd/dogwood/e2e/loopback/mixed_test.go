package loopback

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// previousRelease is the commit of the release before machine health checks: a
// cluster must run with it during a rolling upgrade (SPEC §9). DOGWOOD_PREV_BIN (a
// built binary) or DOGWOOD_PREV_REF (a commit) override it.
const previousRelease = "4ecf7e8"

// prevBin builds the previous release from this repository's history (cached by
// commit in the temp dir), or skips when there is no history to build it from.
func prevBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DOGWOOD_PREV_BIN"); p != "" {
		return p
	}
	ref := previousRelease
	if r := os.Getenv("DOGWOOD_PREV_REF"); r != "" {
		ref = r
	}
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	commit, err := exec.Command("git", "rev-parse", "--verify", ref+"^{commit}").Output()
	if err != nil {
		skip("skipping: no git history with the previous release %s to build it from (set DOGWOOD_PREV_BIN): %v", ref, err)
	}
	c := strings.TrimSpace(string(commit))
	dir := filepath.Join(os.TempDir(), "dogwood-prev-"+c[:12])
	bin := filepath.Join(dir, "dogwood")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	src, err := os.MkdirTemp("", "dogwood-prev-src-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(src)
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		skip("skipping: not in a git checkout: %v", err)
	}
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", strings.TrimSpace(string(top)), c, src))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", c, err, out)
	}
	os.MkdirAll(dir, 0o755)
	// -tags agent: one binary that runs every command itself, whether the release
	// is from before the split into dogwood and dogwood-agent or after.
	build := exec.Command("go", "build", "-tags", "agent", "-o", bin+".tmp", "./cmd/dogwood")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the previous release %s: %v\n%s", c, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// catalogHeaders is an agent's catalog as (kind, key, gen, version, deleted) lines.
func catalogHeaders(t *testing.T, a *agent) []string {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.sock)
	}}}
	res, err := cl.Get("http://agent/v1/catalog")
	if err != nil {
		t.Fatalf("%s catalog: %v", a.name, err)
	}
	defer res.Body.Close()
	var rs []struct {
		K   int             `json:"k"`
		Key string          `json:"key"`
		G   int             `json:"g"`
		V   json.RawMessage `json:"v"`
		D   bool            `json:"d"`
	}
	if err := json.NewDecoder(res.Body).Decode(&rs); err != nil {
		t.Fatalf("%s catalog: %v", a.name, err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d %s %d %s %v", r.K, r.Key, r.G, r.V, r.D))
	}
	sort.Strings(out)
	return out
}

// TestMixedVersions runs this release with the previous one in one cluster, as a
// rolling upgrade does: the new fields (a machine's health and checks, an app's
// when_none_healthy) reach the old agent in records it reads and keeps, every
// agent ends with the same catalog, and a new agent that learns everything from
// the old one alone gets the new fields back whole.
func TestMixedVersions(t *testing.T) {
	old := prevBin(t)
	c := newCluster(t)
	h1 := c.add("h1", "ord")
	h1.bin = old
	h1.start()
	h2 := c.add("h2", "ord")
	h2.start()
	h3 := c.add("h3", "ams")
	h3.start()
	c.waitMembers([]*agent{h1, h2, h3}, 20*time.Second)

	h2.must("orgs", "create", "acme")
	h2.must("apps", "create", "web", "--org", "acme", "--when-none-healthy", "none")
	eventually(t, 10*time.Second, func() (bool, string) {
		r := h1.cli("apps", "list")
		return r.code == 0 && strings.Contains(r.stdout, "web"), r.String()
	})
	h1.must("apps", "create", "api", "--org", "acme") // the old agent writes too
	h1.must("machines", "create", "--app", "api")
	// With --wireguard off the machine's address routes nowhere: its check fails
	// at once and the machine goes critical.
	var m struct {
		ID string `json:"id"`
	}
	h2.mustJSON(&m, "machines", "create", "--app", "web", "--check", "tcp:9", "--check-interval", "200ms", "--check-timeout", "100ms")
	h3.must("machines", "create", "--app", "web")

	type mach struct {
		ID       string            `json:"id"`
		Health   string            `json:"health"`
		Metadata map[string]string `json:"metadata"`
	}
	health := func(a *agent) (string, map[string]string) {
		var ms []mach
		a.mustJSON(&ms, "machines", "list", "--app", "web")
		for _, x := range ms {
			if x.ID == m.ID {
				return x.Health, x.Metadata
			}
		}
		return "", nil
	}
	eventually(t, 15*time.Second, func() (bool, string) {
		h, _ := health(h3)
		return h == "critical", "h3 sees " + h
	})
	// The old agent has the record, the health riding in its metadata.
	eventually(t, 15*time.Second, func() (bool, string) {
		_, md := health(h1)
		return md["dogwood.health"] == "critical" && strings.Contains(md["dogwood.checks"], `"target":"9"`), fmt.Sprintf("h1 sees metadata %v", md)
	})
	// Every agent ends with the same catalog (anti-entropy between versions agrees).
	eventually(t, 20*time.Second, func() (bool, string) {
		a, b, cc := catalogHeaders(t, h1), catalogHeaders(t, h2), catalogHeaders(t, h3)
		return strings.Join(a, "\n") == strings.Join(b, "\n") && strings.Join(b, "\n") == strings.Join(cc, "\n"),
			fmt.Sprintf("h1 %d records, h2 %d, h3 %d", len(a), len(b), len(cc))
	})
	if strings.Contains(readFile(h1.log), "invalid_record") {
		t.Errorf("the old agent dropped records as invalid:\n%s", h1.logTail(40))
	}

	// A new agent that hears only from the old one gets the fields back whole.
	h2.signal(syscall.SIGTERM, 10*time.Second)
	h3.signal(syscall.SIGTERM, 10*time.Second)
	h4 := c.add("h4", "ord")
	h4.start()
	eventually(t, 20*time.Second, func() (bool, string) {
		h, md := health(h4)
		return h == "critical" && md["dogwood.health"] == "", fmt.Sprintf("h4 sees %s %v", h, md)
	})
	var apps []struct {
		Name            string `json:"name"`
		WhenNoneHealthy string `json:"when_none_healthy"`
	}
	h4.mustJSON(&apps, "apps", "list")
	for _, a := range apps {
		if want := map[string]string{"web": "none", "api": "all"}[a.Name]; a.WhenNoneHealthy != want {
			t.Errorf("h4: app %s when_none_healthy %q, want %q", a.Name, a.WhenNoneHealthy, want)
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
