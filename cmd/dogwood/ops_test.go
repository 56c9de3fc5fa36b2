//go:build agent

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dogwood/dogwood/mesh/quota"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
	"github.com/dogwood/dogwood/mesh"
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
limit-machines: 50
`), 0o600)
	o, err := parseAgent(t, "--config", cfg, "--region", "fra")
	if err != nil {
		t.Fatal(err)
	}
	want := agentOptions{Name: "h1", Region: "fra", Join: []string{"198.18.0.2:7946", "198.18.0.3:7946"},
		GossipKeyFile: "/etc/dogwood/gossip.key", Gateway: true, WGPort: 51999, LogFormat: "json",
		DataDir: "/var/lib/dogwood", GossipAddr: "0.0.0.0:7946", WireGuard: "auto", WGInterface: "dogwood0",
		ResolvConf: "/etc/resolv.conf", APISocket: "/run/dogwood/api.sock", LogLevel: "info", AEInterval: o.AEInterval, TombstoneTTL: 72 * time.Hour}
	want.Limits = quota.Defaults()
	want.Limits.Machines = 50
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
		l.With("component", "wireguard", "interface", "dogwood0").With("interface", "dogwood0", "component", "wireguard").Info("x", "component", "wireguard-go", "k", 1)
		l.Info("plain")
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if n := strings.Count(lines[0], "component"); n != 1 || !strings.Contains(lines[0], "wireguard-go") {
			t.Errorf("%s: %q: want one component, the innermost", format, lines[0])
		}
		if n := strings.Count(lines[0], "interface"); n != 1 {
			t.Errorf("%s: %q: an attribute repeated with the same value appears %d times", format, lines[0], n)
		}
		if strings.Contains(lines[1], "component") {
			t.Errorf("%s: %q", format, lines[1])
		}
	}
	if _, err := newLogger(&bytes.Buffer{}, "xml", "info"); exitCode(err) != 2 {
		t.Fatalf("--log-format xml: %v", err)
	}
}

var ports = e2eproc.NewPorts()

// freePort returns a loopback address whose port is free for both TCP and UDP.
func freePort(t *testing.T) string {
	t.Helper()
	port, err := ports.Next()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestAgentFromConfigFile starts an agent from a config file alone (no other
// flags), as the packaged unit does, and checks what systemd and Prometheus see:
// READY=1 on $NOTIFY_SOCKET, /healthz, /readyz, build info and member metrics.
func TestAgentFromConfigFile(t *testing.T) {
	metrics, logs := startConfigAgent(t, "")
	get := httpGetter(t, metrics)
	if code, body := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "[+] dns") || !strings.Contains(body, "ready\n") {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	_, m := get("/metrics")
	for _, want := range []string{`dogwood_build_info{commit=`, `dogwood_gossip_members{status="alive"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	first, _, _ := strings.Cut(logs.String(), "\n")
	if !strings.Contains(first, `"msg":"dogwood agent"`) || !strings.Contains(first, `"version":`) {
		t.Errorf("first log line %q: want the build info, as JSON", first)
	}
}

// TestReadyzNotJoined: an agent whose --join targets answer nobody still tells
// systemd it is up (a host must start while its peers are down) but is not ready.
func TestReadyzNotJoined(t *testing.T) {
	metrics, _ := startConfigAgent(t, "join: ["+freePort(t)+"]\n")
	get := httpGetter(t, metrics)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "[-] gossip: not joined") || !strings.Contains(body, "[+] dns") {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	var r struct {
		Ready  bool
		Checks []readyCheck
	}
	_, body := get("/readyz?format=json")
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Ready || len(r.Checks) != 4 || r.Checks[0].OK ||
		r.Checks[3].Name != "disk" || !r.Checks[3].OK {
		t.Fatalf("/readyz?format=json: %v %s", err, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
}

func httpGetter(t *testing.T, addr string) func(path string) (int, string) {
	return func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// startConfigAgent runs an agent in this process from a config file alone (plus
// extra YAML), waits for READY=1 on $NOTIFY_SOCKET and stops it when the test
// ends. It returns the metrics address and the agent's (JSON) log.
func startConfigAgent(t *testing.T, extra string) (string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	t.Setenv("NOTIFY_SOCKET", notify)
	var logs *syncBuffer
	var metrics string
	var done chan error
	var cancel context.CancelFunc
	notified := make(chan string, 1)
	// Ports are picked free but may be taken before the agent binds them (other
	// tests run beside this one): then start again on new ports.
	for attempt := 1; ; attempt++ {
		metrics = freePort(t)
		cfg := filepath.Join(dir, "agent.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`
name: cfg1
region: ord
data-dir: %s
gossip-addr: %s
insecure-no-gossip-key: true
wireguard: "off"
dns-listen: [%s]
upstream-dns: [127.0.0.1:9]
api-socket: %s
metrics-addr: %s
invite-listen: "off"
log-format: json
`+extra, filepath.Join(dir, "data"), freePort(t), freePort(t), filepath.Join(dir, "api.sock"), metrics)), 0o600)

		logs = &syncBuffer{}
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan error, 1)
		go func() {
			app := newApp(&env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: logs})
			done <- app.RunContext(ctx, []string{"dogwood", "agent", "--config", cfg})
		}()
		go func() {
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 256)
			n, err := nc.Read(buf)
			notified <- fmt.Sprintf("%s%v", buf[:n], err)
		}()
		select {
		case got := <-notified:
			if got != "READY=1<nil>" {
				cancel()
				t.Fatalf("sd_notify: %q\n%s", got, logs.String())
			}
		case err := <-done:
			cancel()
			if attempt < 3 && err != nil && strings.Contains(err.Error(), "address already in use") {
				nc.SetReadDeadline(time.Now()) // end this attempt's reader
				<-notified
				continue
			}
			t.Fatalf("agent exited before READY=1: %v\n%s", err, logs.String())
		}
		break
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v\n%s", err, logs.String())
		}
	})
	return metrics, logs
}

// syncBuffer is a bytes.Buffer the agent's goroutines may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDoctorWithoutAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, out, _ := runCLI(t, "--agent", sock, "doctor")
	if code != 1 || !strings.Contains(out, "FAIL  agent") || !strings.Contains(out, "systemctl status dogwood") || !strings.Contains(out, "0 passed, 0 warnings, 1 failed") {
		t.Fatalf("doctor without an agent: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "--agent", sock, "doctor", "--json")
	var cs []doctorCheck
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&cs); err != nil || code != 1 || len(cs) != 1 || cs[0].Status != "fail" {
		t.Fatalf("doctor --json without an agent: exit %d, %v\n%s", code, err, out)
	}
}

func TestKeyListSummary(t *testing.T) {
	var out bytes.Buffer
	rows := keyRows([]keyringHost{
		{Host: "h1", OK: true, Primary: "NEW=", Keys: []string{"NEW=", "OLD="}},
		{Host: "h2", OK: true, Primary: "OLD=", Keys: []string{"OLD=", "NEW="}},
		{Host: "h3", OK: true, Primary: "NEW=", Keys: []string{"NEW="}},
		{Host: "h4", Error: "gossip is not encrypted on this host: no keyring"},
	})
	printKeyRows(&env{stdout: &out}, rows)
	want := "KEY   INSTALLED  PRIMARY\nNEW=  3/3        2/3\nOLD=  2/3        1/3\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	// --json has the same rows, with the hosts named.
	wantRows := []keyRow{
		{Key: "NEW=", Installed: 3, Primary: 2, Hosts: 3, InstalledOn: []string{"h1", "h2", "h3"}, PrimaryOn: []string{"h1", "h3"}},
		{Key: "OLD=", Installed: 2, Primary: 1, Hosts: 3, InstalledOn: []string{"h1", "h2"}, PrimaryOn: []string{"h2"}},
	}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Fatalf("rows %+v\nwant %+v", rows, wantRows)
	}
}

func TestDoctorVersionCheck(t *testing.T) {
	if c := versionCheck("1.2.0", map[string][]string{"1.2.0": {"h1", "h2"}}, nil, nil); c.Status != "pass" {
		t.Errorf("same versions: %+v", c)
	}
	c := versionCheck("1.2.0", map[string][]string{"1.2.0": {"h1", "h3"}, "1.1.0": {"h2"}}, nil, nil)
	if c.Status != "warn" || c.Detail != "1.1.0 on h2; 1.2.0 on h1,h3" {
		t.Errorf("mixed versions: %+v", c)
	}
	// Nobody answered: that is not "every member runs the same version".
	c = versionCheck("1.2.0", map[string][]string{"1.2.0": {"h1"}}, []string{`h2: host "h2" did not answer info: context deadline exceeded`}, nil)
	if c.Status != "fail" || !strings.Contains(c.Detail, "no answer from: h2") {
		t.Errorf("unanswered member: %+v", c)
	}
	c = versionCheck("1.2.0", map[string][]string{"1.2.0": {"h1"}}, []string{"h2: cannot reach h2 because of versions: …"}, []string{"h2 runs v0.1.0 (gossip protocol 1 …)"})
	if c.Status != "fail" || !strings.HasPrefix(c.Detail, "h2 runs v0.1.0") {
		t.Errorf("member of an old protocol: %+v", c)
	}
}

// A missing first handshake right after the agent started is "not yet" (WARN);
// later it is a blocked path (FAIL) that names the port.
func TestHandshakeCheck(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { x := t0.Add(-d); return &x }
	for _, tc := range []struct {
		last    *time.Time
		started time.Time
		status  string
		want    string
	}{
		{nil, t0.Add(-2 * time.Second), checkWarn, "no handshake with 198.18.0.2:51820 yet (the agent started 2s ago)"},
		{nil, t0.Add(-29 * time.Second), checkWarn, "yet"},
		{nil, t0.Add(-time.Minute), checkFail, "never completed a handshake"},
		{ago(10 * time.Second), t0.Add(-2 * time.Second), checkPass, "10s ago"},
		{ago(4 * time.Minute), t0.Add(-time.Hour), checkFail, "last handshake 4m0s ago"},
	} {
		c := handshakeCheck("handshake h2", "198.18.0.2:51820", tc.last, t0, tc.started)
		if c.Status != tc.status || !strings.Contains(c.Detail, tc.want) {
			t.Errorf("last %v, started %v: %+v; want %s %q", tc.last, tc.started, c, tc.status, tc.want)
		}
		if c.Status != checkPass && !strings.Contains(c.Next, "51820/udp") {
			t.Errorf("next step does not name the port: %+v", c)
		}
	}
}

// TestDiskBehindIsNotReady: while records this host applied are not on its disk,
// /readyz says so (and fails).
func TestDiskBehindIsNotReady(t *testing.T) {
	if c := diskCheck(nil); !c.OK {
		t.Fatalf("caught-up disk: %+v", c)
	}
	c := diskCheck(errors.New("3 records from other hosts not on disk since 2026-01-01T00:00:00Z: no space left on device"))
	if c.OK || !strings.Contains(c.Detail, "no space left") {
		t.Fatalf("disk behind: %+v", c)
	}
}

func TestMemberVersionColumn(t *testing.T) {
	for _, c := range []struct {
		m    mesh.MemberInfo
		want string
	}{
		{mesh.MemberInfo{Version: "0.3.0", Protocol: 3}, "0.3.0"},
		{mesh.MemberInfo{}, "?"},
		{mesh.MemberInfo{Version: "0.1.0", Protocol: 1, VersionProblem: "h2 runs v0.1.0 …"}, "0.1.0 (cannot talk)"},
	} {
		if got := memberVersion(c.m); got != c.want {
			t.Errorf("%+v: %q, want %q", c.m, got, c.want)
		}
	}
}
