package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// operatorBlocks returns the README's shell blocks marked
// "<!-- runnable: operator NAME -->", by NAME: the operator's steps that
// need real hosts (firewall, key rotation, backup and restore).
func operatorBlocks(t *testing.T) map[string]string {
	t.Helper()
	md, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- runnable: operator ([a-z-]+) -->\\s*\n```sh\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(md), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// runBlock runs a README block with bash inside h's namespace, as an operator
// on that host would: dogwood on PATH, talking to h's agent.
func (w *world) runBlock(h *host, name, block string, env ...string) string {
	w.t.Helper()
	dir := filepath.Join(w.dir, "op-"+h.name)
	os.MkdirAll(dir, 0o700)
	script := "set -euo pipefail\ncd " + dir + "\n" + block
	env = append([]string{"DOGWOOD_AGENT=" + h.sock, "PATH=" + filepath.Dir(w.bin) + ":" + os.Getenv("PATH")}, env...)
	a := e2eproc.InNS(h.ns, "bash", "-c", script)
	out, err := e2eproc.Run(2*time.Minute, env, a[0], a[1:]...)
	if err != nil {
		w.t.Fatalf("README block %q on %s: %v\n%s", name, h.name, err, out)
	}
	w.t.Logf("README block %q on %s:\n%s", name, h.name, out)
	return out
}

// TestReadmeOperatorSteps runs the README's operator steps as written on a
// cluster in namespaces.
func TestReadmeOperatorSteps(t *testing.T) {
	requireEnv(t)
	blocks := operatorBlocks(t)
	for _, want := range []string{"keyring"} {
		if blocks[want] == "" {
			t.Fatalf("README has no block marked <!-- runnable: operator %s -->", want)
		}
	}
	step := stepLogger(t)
	w := newWorld(t, "ro")
	old, _ := os.ReadFile(w.key)
	oldKey := strings.TrimSpace(string(old))
	var files []string
	var hosts []*host
	for i := 1; i <= 3; i++ {
		f, extra := w.ownKeyFile(i, string(old))
		files = append(files, f)
		hosts = append(hosts, w.addHost(i, hostOpts{region: "ord", extra: extra}))
	}
	// The README's `systemctl enable --now dogwood && dogwood doctor`: doctor
	// right after the agent answers finds nothing wrong with a healthy host.
	if out, err := w.try(hosts[2], "doctor"); err != nil {
		t.Errorf("doctor right after the agent started: %v\n%s", err, out)
	} else {
		t.Logf("doctor right after start:\n%s", out)
	}
	w.waitMembers(hosts, "h1", "h2", "h3")
	step("cluster up")

	t.Run("key rotation", func(t *testing.T) {
		out := w.runBlock(hosts[1], "keyring", blocks["keyring"])
		if !strings.Contains(out, "1/3") && !strings.Contains(out, "3/3") {
			t.Errorf("keyring list printed no counts:\n%s", out)
		}
		var newKey string
		for i, f := range files {
			b, _ := os.ReadFile(f)
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || lines[0] == oldKey {
				t.Errorf("h%d key file after the README's rotation: %q (old %s)", i+1, b, oldKey)
				continue
			}
			if newKey == "" {
				newKey = lines[0]
			} else if lines[0] != newKey {
				t.Errorf("h%d holds %s, h1 %s", i+1, lines[0], newKey)
			}
		}
		w.waitMembers(hosts, "h1", "h2", "h3")
		if t.Failed() {
			return
		}
		out = w.cli(hosts[0], "keyring", "list")
		if want := fmt.Sprintf("%s  3/3        3/3", newKey); !strings.Contains(out, want) {
			t.Errorf("keyring list after rotation:\n%s\nwant %q", out, want)
		}
	})
	step("key rotation")
}
