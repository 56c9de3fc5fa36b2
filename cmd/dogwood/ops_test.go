package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestVersionFlagMatchesCommand(t *testing.T) {
	c1, a, _ := runCLI(t, "version")
	c2, b, _ := runCLI(t, "--version")
	if c1 != 0 || c2 != 0 || a != b || !strings.HasPrefix(a, "dogwood ") || !strings.Contains(a, "commit ") {
		t.Fatalf("version %q (%d), --version %q (%d)", a, c1, b, c2)
	}
	_, j, _ := runCLI(t, "version", "--json")
	var bi buildInfo
	if err := json.Unmarshal([]byte(j), &bi); err != nil || bi != readBuildInfo() {
		t.Fatalf("version --json %q: %v", j, err)
	}
}

// parseAgent runs the agent command's flag and config-file handling and returns
// the options the agent would start with.
func parseAgent(t *testing.T, args ...string) (agentOptions, error) {
	t.Helper()
	var o, e bytes.Buffer
	app := newApp(&env{stdin: strings.NewReader(""), stdout: &o, stderr: &e})
	var got agentOptions
	for _, c := range app.Commands {
		if c.Name == "agent" {
			c.Action = func(c *cli.Context) error { got = agentOptionsFrom(c); return nil }
		}
	}
	err := app.Run(reorderArgs(app, append([]string{"dogwood", "agent"}, args...)))
	return got, err
}

func TestAgentConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte(`
name: h1
region: ord
join: [198.18.0.2:7946, 198.18.0.3:7946]
gossip-key-file: /etc/dogwood/gossip.key
gateway: true
wg-port: 51999
log-format: json
`), 0o600)
	o, err := parseAgent(t, "--config", cfg, "--region", "fra")
	if err != nil {
		t.Fatal(err)
	}
	want := agentOptions{Name: "h1", Region: "fra", Join: []string{"198.18.0.2:7946", "198.18.0.3:7946"},
		GossipKeyFile: "/etc/dogwood/gossip.key", Gateway: true, WGPort: 51999, LogFormat: "json",
		DataDir: "/var/lib/dogwood", GossipAddr: "0.0.0.0:7946", WireGuard: "auto", WGInterface: "dogwood0",
		ResolvConf: "/etc/resolv.conf", APISocket: "/run/dogwood/api.sock", LogLevel: "info", AEInterval: o.AEInterval}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("options from file + flags:\n got %+v\nwant %+v", o, want)
	}

	os.WriteFile(cfg, []byte("name: h1\nregoin: ord\n"), 0o600)
	if _, err := parseAgent(t, "--config", cfg); exitCode(err) != 2 || !strings.Contains(err.Error(), "regoin") {
		t.Fatalf("misspelt key: %v (exit %d), want a usage error naming it", err, exitCode(err))
	}
	if _, err := parseAgent(t, "--config", filepath.Join(dir, "missing.yaml")); exitCode(err) != 2 {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLogComponentOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		l, err := newLogger(&b, format, "debug")
		if err != nil {
			t.Fatal(err)
		}
		l.With("component", "wireguard").With("interface", "dogwood0", "component", "wireguard").Info("x", "component", "wireguard-go", "k", 1)
		l.Info("plain")
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if n := strings.Count(lines[0], "component"); n != 1 || !strings.Contains(lines[0], "wireguard-go") {
			t.Errorf("%s: %q: want one component, the innermost", format, lines[0])
		}
		if strings.Contains(lines[1], "component") {
			t.Errorf("%s: %q", format, lines[1])
		}
	}
	if _, err := newLogger(&bytes.Buffer{}, "xml", "info"); exitCode(err) != 2 {
		t.Fatalf("--log-format xml: %v", err)
	}
}
