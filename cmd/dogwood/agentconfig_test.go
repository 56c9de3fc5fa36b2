//go:build agent

package main

import (
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A config value of the wrong kind is named in plain words (no Go types), with
// exit 2, before the agent starts.
func TestConfigTypeErrorsInPlainWords(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"join: 198.18.0.2:7946", "join: want a list, got the text \"198.18.0.2:7946\" (write join: [198.18.0.2:7946])"},
		{"join: [1, 2]", "join: item 1: want text, got the number 1"},
		{"wg-port: \"abc\"", "wg-port: want a whole number, got the text \"abc\""},
		{"gateway: maybe", "gateway: want true or false"},
		{"region: 12", "region: want text, got the number 12 (put it in quotes: region: \"12\")"},
		{"tombstone-ttl: 5", "tombstone-ttl: want a duration with its unit"},
		{"tombstone-ttl: 5x", "tombstone-ttl: want a duration with its unit (72h, 30m, 10s), got \"5x\""},
		{"dns-listen: {a: 1}", "dns-listen: want a list of text"},
		{"region:", "region: want text, got nothing"},
	} {
		f := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(f, []byte(tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCLI(t, "agent", "--config", f, "--data-dir", filepath.Join(dir, "data"))
		if code != 2 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "interface") || strings.Contains(errs, "Expected") {
			t.Errorf("%s: exit %d, %q; want exit 2 and %q", tc.yaml, code, errs, tc.want)
		}
	}
}

// `agent cleanup --config` takes the interface from the agent's config file
// and accepts the file's other settings. Run in a network namespace of its own
// (unshare -n): cleanup removes what it finds.
func TestCleanupReadsAgentConfig(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "agent.yaml")
	os.WriteFile(f, []byte("wg-interface: dwcfgtest0\nregion: ord\ngateway: true\njoin: [198.18.0.2:7946]\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("wg-interfac: x\n"), 0o600)
	if code, _, errs := runCLI(t, "agent", "cleanup", "--config", bad); code != 2 || !strings.Contains(errs, "unknown setting(s) wg-interfac") {
		t.Errorf("cleanup with a misspelt key: exit %d %q", code, errs)
	}
	if os.Geteuid() != 0 {
		needs.Skip(t, "needs root for a network namespace of its own")
	}
	needTool(t, "runs cleanup in a namespace of its own", "unshare", "go")
	bin := buildDogwood(t, dir)
	out, err := exec.Command("unshare", "-n", bin, "agent", "cleanup", "--config", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed dwcfgtest0") {
		t.Errorf("agent cleanup --config: %v\n%s", err, out)
	}
}

// --api-socket-group: a member of the group uses the API without root, a user
// outside it is refused by the socket's mode.
func TestAPISocketGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		needs.Skip(t, "needs root to run clients as other users")
	}
	needTool(t, "runs API clients as another user", "setpriv", "curl", "getent")
	sock, _, _, _, _ := testAgent(t)
	os.Chmod(filepath.Dir(sock), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(sock)), 0o755) // t.TempDir's parent is 0700
	grp := strings.Split(strings.TrimSpace(mustOut(t, "getent", "group", "nogroup", "65534")), "\n")[0]
	name, gid := strings.Split(grp, ":")[0], strings.Split(grp, ":")[2]
	if err := shareSocket(sock, name); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(sock)
	if st.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", st.Mode().Perm())
	}
	curl := func(groups string) (string, error) {
		out, err := exec.Command("setpriv", "--reuid=12345", "--regid=12345", "--groups="+groups,
			"curl", "-sS", "--max-time", "5", "--unix-socket", sock, "http://agent/v1/health").CombinedOutput()
		return string(out), err
	}
	if out, err := curl(gid); err != nil || !strings.Contains(out, `"ok"`) {
		t.Errorf("a member of %s: %v %s", name, err, out)
	}
	if out, err := curl("12345"); err == nil || strings.Contains(out, `"ok"`) {
		t.Errorf("a user outside %s reached the API: %v %s", name, err, out)
	}
	if err := shareSocket(sock, "no-such-group-dw"); err == nil || !strings.Contains(err.Error(), "groupadd") {
		t.Errorf("an unknown group: %v", err)
	}
}

func mustOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}
