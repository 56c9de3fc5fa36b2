package netns

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// The harness. Every name a run creates starts with prefix ("dw" + 4 hex), so
// concurrent runs never collide and leftovers are attributable. All addresses are in
// 198.18.0.0/15 (RFC 2544 benchmarking space): nothing ever leaves the namespaces
// the test made.

var (
	prefixOnce sync.Once
	prefix     string

	binOnce sync.Once
	binPath string
	binErr  error
	baseDir string // world-traversable temp dir (the proxy runs as nobody)
)

func runPrefix() string {
	prefixOnce.Do(func() {
		b := make([]byte, 2)
		rand.Read(b)
		prefix = "dw" + hex.EncodeToString(b)
	})
	return prefix
}

// requireEnv skips unless the test can run: root, /dev/net/tun and the tools.
func requireEnv(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping network-namespace end-to-end test in -short mode")
	}
	needs.Root(t)
	needs.TUN(t)
	needs.Tools(t, append([]string{"ip", "nft", "wg", "dig", "curl", "busybox"}, tools...)...)
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		needs.Skip(t, "network namespaces unavailable: %v %s", err, out)
	}
}

// dogwoodBin returns a dogwood binary built from this source tree ($DOGWOOD_BIN wins).
func dogwoodBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		baseDir, binErr = os.MkdirTemp("", runPrefix()+"-e2e-")
		if binErr != nil {
			return
		}
		if binErr = os.Chmod(baseDir, 0o755); binErr != nil {
			return
		}
		if src := os.Getenv("DOGWOOD_BIN"); src != "" {
			binPath, binErr = e2eproc.CopyDogwood(src, baseDir)
			return
		}
		if _, err := exec.LookPath("go"); err != nil {
			binErr = fmt.Errorf("no go in PATH to build dogwood (or set DOGWOOD_BIN): %w", err)
			return
		}
		binPath, binErr = e2eproc.BuildDogwood(baseDir)
	})
	if binErr != nil {
		t.Fatalf("building dogwood: %v", binErr)
	}
	return binPath
}

// TestMain also serves as the helper tool run inside namespaces (HTTP server,
// TCP stream, UDP probes): the test binary re-executes itself with DWE2E_HELPER set.
func TestMain(m *testing.M) {
	if h := os.Getenv("DWE2E_HELPER"); h != "" {
		os.Exit(helperMain(strings.Fields(h)))
	}
	code := m.Run()
	if baseDir != "" {
		os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Commands

// run runs a command with a bounded time and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	return e2eproc.Run(timeout, nil, name, args...)
}

// must runs a command and fails the test if it fails.
func must(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := run(30*time.Second, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func nsMust(t testing.TB, ns string, argv ...string) string {
	t.Helper()
	a := e2eproc.InNS(ns, argv...)
	return must(t, a[0], a[1:]...)
}

// proc is a long-running process in its own process group, output in a file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func startProc(t testing.TB, logPath, name string, env []string, argv ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p // the world stops it on cleanup (after dumping state on failure)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs it.
// Idempotent.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return p.err
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// Anything left in the group (there should be nothing) goes too.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	return p.err
}

// kill SIGKILLs the process group and waits for it.
func (p *proc) kill() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// ---------------------------------------------------------------------------
// The world: namespaces, underlay, agents

type world struct {
	t      *testing.T
	pfx    string
	bin    string
	dir    string // this test's files (0755)
	br     string // namespace holding the underlay bridge
	key    string // gossip key file
	mu     sync.Mutex
	nss    []string
	ifaces []string // WireGuard interfaces (their UAPI sockets)
	hosts  map[string]*host
	procs  []*proc
}

type host struct {
	w       *world
	name    string // catalog name: h1, h2...
	idx     int
	ns      string
	iface   string
	addr    string // underlay IPv4
	sock    string
	dataDir string
	region  string
	gateway bool
	agent   *proc
	args    []string
	pubKey  string
	hostID  uint32
	// bin is the dogwood binary the host's agent and CLI calls run (another
	// release's in the upgrade tests); empty: the world's.
	bin string

	hostMounts bool // see hostOpts
}

// binary is the dogwood binary this host runs.
func (h *host) binary() string {
	if h.bin != "" {
		return h.bin
	}
	return h.w.bin
}

func newWorld(t *testing.T, tag string) *world {
	t.Helper()
	bin := dogwoodBin(t)
	dir, err := os.MkdirTemp(baseDir, tag+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	w := &world{t: t, pfx: runPrefix() + tag, bin: bin, dir: dir, hosts: map[string]*host{}}
	t.Cleanup(w.cleanup)
	w.br = w.netns("br")
	must(t, "ip", "-n", w.br, "link", "add", "br0", "type", "bridge")
	must(t, "ip", "-n", w.br, "link", "set", "br0", "up")
	key := strings.TrimSpace(w.cli(nil, "keygen"))
	w.key = filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(w.key, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// stepLogger logs each step of a long test with the seconds since it began,
// so a slow phase shows in the log.
func stepLogger(t *testing.T) func(what string) {
	t0 := time.Now()
	return func(what string) { t.Logf("[%5.1fs] %s", time.Since(t0).Seconds(), what) }
}

// gatewayLAN is a bridge on a gateway host's public side (198.19.0.1/24);
// laptops on it reach nothing but the gateway.
type gatewayLAN struct {
	w      *world
	gw     *host
	bridge string
}

func (w *world) gatewayLAN(gw *host) *gatewayLAN {
	w.t.Helper()
	lan := w.name("lan")
	nsMust(w.t, gw.ns, "ip", "link", "add", lan, "type", "bridge")
	nsMust(w.t, gw.ns, "ip", "addr", "add", "198.19.0.1/24", "dev", lan)
	nsMust(w.t, gw.ns, "ip", "link", "set", lan, "up")
	return &gatewayLAN{w: w, gw: gw, bridge: lan}
}

// laptop plugs a new namespace into the LAN at 198.19.0.<i+1> (i ≥ 1).
func (l *gatewayLAN) laptop(suffix string, i int) string {
	w, t := l.w, l.w.t
	t.Helper()
	ns := w.netns(suffix)
	in, out := w.name(fmt.Sprintf("l%d", i)), w.name(fmt.Sprintf("q%d", i))
	must(t, "ip", "link", "add", in, "netns", ns, "type", "veth", "peer", "name", out, "netns", l.gw.ns)
	nsMust(t, l.gw.ns, "ip", "link", "set", out, "master", l.bridge, "up")
	nsMust(t, ns, "ip", "addr", "add", fmt.Sprintf("198.19.0.%d/24", i+1), "dev", in)
	nsMust(t, ns, "ip", "link", "set", in, "up")
	return ns
}

// laptopReachesWeb checks that the laptop resolves web.internal through the
// network's DNS to every web machine and gets each one's tag over HTTP.
func laptopReachesWeb(t *testing.T, lap, dnsAddr string, web []*machine, webAddrs []string) {
	t.Helper()
	err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
		got, status, err := digAAAA(lap, dnsAddr, "web.internal")
		if err != nil {
			return err
		}
		if status != "NOERROR" || strings.Join(got, ",") != strings.Join(webAddrs, ",") {
			return fmt.Errorf("dig @%s web.internal from the laptop: %s %v, want %v", dnsAddr, status, got, webAddrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range web {
		body, err := httpGet(lap, m.addr(), 3*time.Second)
		if err != nil || strings.TrimSpace(body) != m.tag {
			t.Errorf("laptop → %s: %q %v", m.tag, body, err)
		}
	}
}

// name is a per-run unique name (keep suffixes short: interface names ≤ 15 bytes).
func (w *world) name(suffix string) string { return w.pfx + suffix }

// netns creates a namespace (lo up) that cleanup deletes.
func (w *world) netns(suffix string) string {
	w.t.Helper()
	ns := w.name(suffix)
	w.mu.Lock()
	w.nss = append(w.nss, ns)
	w.mu.Unlock()
	must(w.t, "ip", "netns", "add", ns)
	must(w.t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// cleanup stops every process, then removes namespaces, /etc/netns entries and
// UAPI sockets. It runs even when the test failed.
func (w *world) cleanup() {
	if w.t.Failed() || os.Getenv("DWE2E_LOGS") != "" {
		w.dump()
	}
	w.mu.Lock()
	procs, nss, ifaces := w.procs, w.nss, w.ifaces
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(3 * time.Second) }()
	}
	wg.Wait()
	for _, ns := range nss {
		// Daemons we started in our namespaces (wireguard-go of wg-quick, helpers).
		out, _ := run(5*time.Second, "ip", "netns", "pids", ns)
		for _, f := range strings.Fields(out) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, ns := range nss {
		run(10*time.Second, "ip", "netns", "del", ns)
		if strings.HasPrefix(ns, "dw") {
			os.RemoveAll(filepath.Join("/etc/netns", ns))
		}
	}
	for _, ifc := range ifaces {
		os.Remove(filepath.Join("/var/run/wireguard", ifc+".sock"))
	}
}

// dump logs what the hosts look like, for a failed test.
func (w *world) dump() {
	t := w.t
	for _, h := range w.sortedHosts() {
		var b strings.Builder
		for _, argv := range [][]string{
			{"wg", "show", h.iface},
			{"ip", "-6", "route"},
			{"ip", "-6", "addr"},
			{"nft", "list", "ruleset"},
		} {
			out, _ := e2eproc.NSRun(5*time.Second, h.ns, argv...)
			fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(argv, " "), out)
		}
		log := ""
		if h.agent != nil {
			log = h.agent.output()
			if len(log) > 20000 {
				log = "…" + log[len(log)-20000:]
			}
		}
		t.Logf("=== %s (%s)\n%s--- agent log:\n%s", h.name, h.ns, b.String(), log)
	}
}

func (w *world) track(p *proc) *proc {
	w.mu.Lock()
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	return p
}

// cli runs the dogwood CLI (in the root namespace; it only talks to a unix socket)
// and fails the test on error.
func (w *world) cli(h *host, args ...string) string {
	w.t.Helper()
	out, err := w.try(h, args...)
	if err != nil {
		w.t.Fatalf("dogwood %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (w *world) try(h *host, args ...string) (string, error) {
	var env []string
	bin := w.bin
	if h != nil {
		env = []string{"DOGWOOD_AGENT=" + h.sock}
		bin = h.binary()
	}
	return e2eproc.Run(30*time.Second, env, bin, args...)
}

// cliJSON runs a CLI command with --json and decodes its output.
func (w *world) cliJSON(h *host, v any, args ...string) {
	w.t.Helper()
	out := w.cli(h, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		w.t.Fatalf("dogwood %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

type hostOpts struct {
	region         string
	gateway        bool
	publicEndpoint string
	extra          []string        // more agent flags
	bin            string          // another release's binary (host.bin)
	before         func(ns string) // runs in the host's namespace setup, before its agent starts
	// hostMounts runs the agent in the host's mount namespace (nsenter --net), not
	// the private one `ip netns exec` makes: a container runtime there must see the
	// agent's namespace mounts and the host's cgroup mounts (cni_test.go).
	hostMounts bool
}

// addHost creates host namespace hN with a veth to the underlay bridge
// (198.18.0.N/24), and starts its agent, joining h1 unless it is h1.
func (w *world) addHost(idx int, o hostOpts) *host {
	t := w.t
	t.Helper()
	h := &host{w: w, name: fmt.Sprintf("h%d", idx), idx: idx, region: o.region, gateway: o.gateway, bin: o.bin, hostMounts: o.hostMounts}
	h.ns = w.netns(fmt.Sprintf("h%d", idx))
	h.iface = w.name(fmt.Sprintf("w%d", idx))
	h.addr = fmt.Sprintf("198.18.0.%d", idx)
	h.sock = filepath.Join(w.dir, h.name+".sock")
	h.dataDir = filepath.Join(w.dir, h.name)
	w.mu.Lock()
	w.ifaces = append(w.ifaces, h.iface)
	w.hosts[h.name] = h
	w.mu.Unlock()
	hv, bp := w.name(fmt.Sprintf("u%d", idx)), w.name(fmt.Sprintf("p%d", idx))
	must(t, "ip", "link", "add", hv, "netns", h.ns, "type", "veth", "peer", "name", bp, "netns", w.br)
	must(t, "ip", "-n", w.br, "link", "set", bp, "master", "br0", "up")
	must(t, "ip", "-n", h.ns, "addr", "add", h.addr+"/24", "dev", hv)
	must(t, "ip", "-n", h.ns, "link", "set", hv, "up")

	args := []string{"agent", "--name", h.name, "--region", o.region,
		"--gossip-addr", h.addr + ":7946", "--gossip-key-file", w.key,
		"--wireguard", "userspace", "--wg-interface", h.iface, "--wg-port", "51820",
		"--api-socket", h.sock, "--data-dir", h.dataDir,
		// Never forward anything to the host's resolvers: a dead address in our range.
		"--upstream-dns", "198.18.0.254", "--log-level", "debug"}
	if o.gateway {
		args = append(args, "--gateway")
		if o.publicEndpoint != "" {
			args = append(args, "--public-endpoint", o.publicEndpoint)
		}
	}
	if idx != 1 {
		args = append(args, "--join", "198.18.0.1:7946")
	}
	args = append(args, o.extra...)
	if o.before != nil {
		o.before(h.ns)
	}
	h.start(args)
	return h
}

func (h *host) start(args []string) {
	t := h.w.t
	t.Helper()
	h.args = args
	argv := e2eproc.InNS(h.ns, append([]string{h.binary()}, args...)...)
	if h.hostMounts {
		argv = append([]string{"nsenter", "--net=/run/netns/" + h.ns, h.binary()}, args...)
	}
	h.agent = h.w.track(startProc(t, filepath.Join(h.w.dir, h.name+".log"), h.name, nil, argv...))
	if err := e2eproc.Eventually(20*time.Second, 50*time.Millisecond, func() error {
		if h.agent.exited() {
			return fmt.Errorf("agent exited: %v", h.agent.err)
		}
		_, err := h.w.try(h, "status")
		return err
	}); err != nil {
		t.Fatalf("agent %s did not come up: %v\n%s", h.name, err, h.agent.output())
	}
	var st struct {
		PublicKey string `json:"public_key"`
		HostID    uint32 `json:"host_id"`
	}
	h.w.cliJSON(h, &st, "status")
	h.pubKey, h.hostID = st.PublicKey, st.HostID
}

func (w *world) sortedHosts() []*host {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*host
	for i := 1; i <= 16; i++ {
		if h, ok := w.hosts[fmt.Sprintf("h%d", i)]; ok {
			out = append(out, h)
		}
	}
	return out
}

type member struct {
	Name      string `json:"name"`
	HostID    uint32 `json:"host_id"`
	Status    string `json:"status"`
	PublicKey string `json:"public_key"`
}

// waitMembers waits until every given host sees exactly want as alive members.
func (w *world) waitMembers(hosts []*host, want ...string) {
	w.t.Helper()
	for _, h := range hosts {
		err := e2eproc.Eventually(20*time.Second, 100*time.Millisecond, func() error {
			out, err := w.try(h, "members", "--json")
			if err != nil {
				return err
			}
			var ms []member
			if err := json.Unmarshal([]byte(out), &ms); err != nil {
				return err
			}
			alive := map[string]bool{}
			for _, m := range ms {
				if m.Status == "alive" {
					alive[m.Name] = true
				}
			}
			for _, n := range want {
				if !alive[n] {
					return fmt.Errorf("%s does not see %s alive: %s", h.name, n, out)
				}
			}
			return nil
		})
		if err != nil {
			w.t.Fatalf("%s%v", w.exitedAgents(hosts), err)
		}
	}
}

// exitedAgents describes agents of hosts that are no longer running, with the end
// of their logs, first in a failure message: a member that "does not come back" is
// most often an agent that could not start, and a long report is cut from the end.
func (w *world) exitedAgents(hosts []*host) string {
	var b strings.Builder
	for _, h := range hosts {
		if h.agent == nil || !h.agent.exited() {
			continue
		}
		log := h.agent.output()
		if len(log) > 3000 {
			log = "…" + log[len(log)-3000:]
		}
		fmt.Fprintf(&b, "the agent of %s exited (%v); the end of its log:\n%s\n", h.name, h.agent.err, log)
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// Catalog objects

type machine struct {
	ID      string `json:"id"`
	App     string `json:"app"`
	Org     string `json:"org"`
	Host    string `json:"host"`
	Address string `json:"address"`
	ns      string
	tag     string
	http    *proc
}

func (m *machine) addr() string { return m.Address }

type orgInfo struct {
	Slug     string `json:"slug"`
	Networks []struct {
		Name   string `json:"name"`
		ID     uint32 `json:"id"`
		Prefix string `json:"prefix"`
	} `json:"networks"`
}

// networkDNS is fdaa:<net>::3 of an org's default network, seen from h.
func (w *world) networkDNS(h *host, org string) netip.Addr {
	w.t.Helper()
	var orgs []orgInfo
	w.cliJSON(h, &orgs, "orgs", "list")
	for _, o := range orgs {
		if o.Slug == org && len(o.Networks) > 0 {
			p := netip.MustParsePrefix(o.Networks[0].Prefix)
			a := p.Addr().As16()
			a[15] = 3
			return netip.AddrFrom16(a)
		}
	}
	w.t.Fatalf("org %s not found: %+v", org, orgs)
	return netip.Addr{}
}

// createMachine pre-creates the machine's namespace (an agent under `ip netns exec`
// has a private mount namespace, so namespaces it made would be invisible to us),
// creates the machine on host h, and starts an HTTP server on [::]:8080 inside it
// answering "<tag>\n".
func (w *world) createMachine(h *host, app, suffix string) *machine {
	w.t.Helper()
	return w.createMachineWith(h, app, suffix)
}

// helper starts the test binary as a helper tool inside namespace ns.
func (w *world) helper(ns, logName string, args ...string) *proc {
	w.t.Helper()
	self, err := os.Executable()
	if err != nil {
		w.t.Fatal(err)
	}
	return w.track(startProc(w.t, filepath.Join(w.dir, logName+".log"), logName,
		[]string{"DWE2E_HELPER=" + strings.Join(args, " ")}, e2eproc.InNS(ns, self)...))
}

// helperRun runs the helper tool to completion inside ns.
func helperRun(timeout time.Duration, ns string, args ...string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	a := e2eproc.InNS(ns, self)
	return e2eproc.Run(timeout, []string{"DWE2E_HELPER=" + strings.Join(args, " ")}, a[0], a[1:]...)
}

// ---------------------------------------------------------------------------
// Probes from inside a namespace

func pingOK(ns, src, dst string) error {
	args := []string{"busybox", "ping", "-6", "-c", "1", "-W", "1"}
	if src != "" {
		args = append(args, "-I", src)
	}
	out, err := e2eproc.NSRun(5*time.Second, ns, append(args, dst)...)
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v %s", dst, ns, err, strings.TrimSpace(out))
	}
	return nil
}

// pingRetry allows a few attempts: the first packet of a path may wait for a
// WireGuard handshake.
func pingRetry(ns, dst string, tries int) error {
	var err error
	for i := 0; i < tries; i++ {
		if err = pingOK(ns, "", dst); err == nil {
			return nil
		}
	}
	return err
}

func httpGet(ns, addr string, timeout time.Duration) (string, error) {
	url := fmt.Sprintf("http://[%s]:8080/", addr)
	out, err := e2eproc.NSRun(timeout+3*time.Second, ns, "curl", "-g", "-sS", "--max-time", fmt.Sprint(timeout.Seconds()), url)
	if err != nil {
		return out, fmt.Errorf("curl %s from %s: %v %s", url, ns, err, strings.TrimSpace(out))
	}
	return out, nil
}

// digAAAA queries server (empty: the namespace's resolv.conf) and returns the
// sorted answer addresses and the status line.
func digAAAA(ns, server, name string) ([]string, string, error) {
	args := []string{"dig", "+time=1", "+tries=2", "+noall", "+answer", "+comments", name, "AAAA"}
	if server != "" {
		args = append([]string{"dig", "@" + server}, args[1:]...)
	}
	out, err := e2eproc.NSRun(10*time.Second, ns, args...)
	if err != nil {
		return nil, out, fmt.Errorf("dig %s from %s: %v\n%s", name, ns, err, out)
	}
	status := ""
	var addrs []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "status: "); i >= 0 {
			status = strings.TrimSuffix(strings.Fields(l[i+8:])[0], ",")
		}
		f := strings.Fields(l)
		if len(f) == 5 && f[3] == "AAAA" && !strings.HasPrefix(l, ";") {
			addrs = append(addrs, f[4])
		}
	}
	sortStrings(addrs)
	return addrs, status, nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// parallel runs the checks concurrently and returns their errors in order.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(i) }()
	}
	wg.Wait()
	return errs
}
