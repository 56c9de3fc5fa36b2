package netns

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
)

// Containers through a real runtime: podman (Debian's 4.3, CNI backend, runc) runs
// busybox containers on two hosts, and the dogwood CNI plugin puts them on 6PN.
// The runtime runs in its host's network namespace and, like the agent, in the
// host's mount namespace (nsenter --net): the namespaces podman mounts under
// /run/netns must be visible to the agent, and runc needs the host's cgroup
// mounts, which `ip netns exec` hides.

// requireContainers checks root, the tools and a static busybox (the image).
func requireContainers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping container runtime test in -short mode")
	}
	needs.Root(t)
	needs.Tools(t, "podman", "runc", "nsenter", "tar")
	if p, _ := exec.LookPath("busybox"); !staticELF(p) {
		needs.Skip(t, "%s is not statically linked (install busybox-static: `make deps`)", p)
	}
	requireEnv(t, "podman")
}

func staticELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

var (
	pluginOnce sync.Once
	pluginDir  string
	pluginErr  error
)

// cniPluginDir returns a directory holding the plugin, built from this tree, as
// "dogwood" (its CNI type).
func cniPluginDir(t *testing.T) string {
	t.Helper()
	dogwoodBin(t) // makes baseDir
	pluginOnce.Do(func() {
		pluginDir = filepath.Join(baseDir, "cni-bin")
		if pluginErr = os.MkdirAll(pluginDir, 0o755); pluginErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "dogwood"), "github.com/dogwood/dogwood/cmd/dogwood-cni").CombinedOutput()
		if err != nil {
			pluginErr = fmt.Errorf("go build dogwood-cni: %v\n%s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginDir
}

// runtimeHost is podman on one host: its own storage, network configs and
// containers.conf, all under the test's directory.
type runtimeHost struct {
	w      *world
	h      *host
	dir    string
	runDir string // podman's runroot: at most 50 characters, so not under dir
	netDir string
	env    []string
	image  string
}

const cniImage = "localhost/dwbusybox:1"

// runtimeLeftovers are host directories podman and libcni write whatever the
// flags say (the image blob cache, the attachments' result cache); a test that
// made them removes them.
var runtimeLeftovers = []string{"/var/lib/containers", "/var/lib/cni"}

func (w *world) runtime(h *host) *runtimeHost {
	t := w.t
	t.Helper()
	for _, d := range runtimeLeftovers {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	r := &runtimeHost{w: w, h: h, dir: filepath.Join(w.dir, "podman-"+h.name), image: cniImage}
	r.netDir = filepath.Join(r.dir, "net.d")
	if err := os.MkdirAll(r.netDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.runDir, err = os.MkdirTemp("", w.pfx+h.name+"-"); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [%q]\nnetwork_config_dir = %q\n[engine]\nevents_logger = \"none\"\n",
		cniPluginDir(t), r.netDir)
	cf := filepath.Join(r.dir, "containers.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r.env = []string{"CONTAINERS_CONF=" + cf}
	t.Cleanup(r.cleanup)
	if out, err := r.podman(60*time.Second, "import", busyboxImage(t, w), r.image); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	return r
}

var (
	imageOnce sync.Once
	imageTar  string
)

// busyboxImage is a tar of a root holding the static busybox and its applets.
func busyboxImage(t *testing.T, w *world) string {
	t.Helper()
	imageOnce.Do(func() {
		root := filepath.Join(baseDir, "image-root")
		for _, d := range []string{"bin", "www", "etc", "tmp"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		src, _ := exec.LookPath("busybox")
		b, err := os.ReadFile(src)
		if err != nil {
			return
		}
		os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755)
		for _, a := range []string{"sh", "httpd", "wget", "nslookup", "ip", "cat", "sleep", "echo", "true", "hostname"} {
			os.Symlink("busybox", filepath.Join(root, "bin", a))
		}
		tarPath := filepath.Join(baseDir, "image.tar")
		if out, err := exec.Command("tar", "-C", root, "-cf", tarPath, ".").CombinedOutput(); err == nil {
			imageTar = tarPath
		} else {
			t.Logf("tar: %v %s", err, out)
		}
	})
	if imageTar == "" {
		t.Fatal("could not build the busybox image")
	}
	return imageTar
}

func (r *runtimeHost) podman(timeout time.Duration, args ...string) (string, error) {
	argv := append([]string{"--net=/run/netns/" + r.h.ns, "podman",
		"--root", filepath.Join(r.dir, "storage"), "--runroot", r.runDir, "--tmpdir", filepath.Join(r.dir, "tmp"),
		"--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager=cgroupfs"}, args...)
	return e2eproc.Run(timeout, r.env, "nsenter", argv...)
}

// network writes a CNI network config list for the plugin.
func (r *runtimeHost) network(name string, plugin map[string]any) {
	r.w.t.Helper()
	plugin["type"] = "dogwood"
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []any{plugin}})
	if err := os.WriteFile(filepath.Join(r.netDir, name+".conflist"), b, 0o644); err != nil {
		r.w.t.Fatal(err)
	}
}

// ulimits are low fixed limits: podman's defaults raise them, which a sandboxed
// root may not do (`--ulimit host` still raised NOFILE here).
func ulimits() []string {
	var out []string
	for _, l := range []struct {
		name string
		res  int
	}{{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6 /* RLIMIT_NPROC */}} {
		var rl syscall.Rlimit
		if syscall.Getrlimit(l.res, &rl) == nil {
			v := min(rl.Cur, rl.Max, 1024) // NPROC at the test's own value was refused too
			out = append(out, "--ulimit", fmt.Sprintf("%s=%d:%d", l.name, v, v))
		}
	}
	return out
}

// run starts a detached container and returns its full id.
func (r *runtimeHost) run(name, network string, cmd ...string) string {
	r.w.t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--hostname", name, "--network", network}, ulimits()...)
	out, err := r.podman(60*time.Second, append(append(args, r.image), cmd...)...)
	if err != nil {
		r.w.t.Fatalf("podman run %s on %s: %v\n%s", name, r.h.name, err, out)
	}
	lines := strings.Fields(out)
	return lines[len(lines)-1]
}

// httpd is a container serving its name on port 8080.
func (r *runtimeHost) httpd(name, network string) string {
	return r.run(name, network, "sh", "-c", "echo "+name+" > /www/index.html; exec httpd -f -p 8080 -h /www")
}

func (r *runtimeHost) exec(timeout time.Duration, name string, cmd ...string) (string, error) {
	return r.podman(timeout, append([]string{"exec", name}, cmd...)...)
}

func (r *runtimeHost) rm(name string) {
	r.w.t.Helper()
	if out, err := r.podman(60*time.Second, "rm", "-f", "-t", "0", name); err != nil {
		r.w.t.Fatalf("podman rm %s: %v\n%s", name, err, out)
	}
}

// cleanup removes every container (the plugin's DEL runs) and the storage.
func (r *runtimeHost) cleanup() {
	if out, err := r.podman(2*time.Minute, "rm", "-a", "-f", "-t", "0"); err != nil {
		r.w.t.Logf("podman rm -a on %s: %v\n%s", r.h.name, err, out)
	}
	r.podman(time.Minute, "rmi", "-a", "-f")
	// Whatever podman left mounted under its directories goes before the files.
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		var mps []string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && (strings.HasPrefix(f[1], r.dir) || strings.HasPrefix(f[1], r.runDir)) {
				mps = append(mps, f[1])
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(mps)))
		for _, mp := range mps {
			syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(r.dir)
	os.RemoveAll(r.runDir)
}

type cniMachine struct {
	ID       string            `json:"id"`
	App      string            `json:"app"`
	Org      string            `json:"org"`
	Host     string            `json:"host"`
	Address  string            `json:"address"`
	Netns    string            `json:"netns"`
	Source   string            `json:"source"`
	Group    string            `json:"process_group"`
	Health   string            `json:"health"`
	Metadata map[string]string `json:"metadata"`
	// CreatedAt is when the agent recorded the machine.
	CreatedAt time.Time `json:"created_at"`
}

// containerMachines are the cni-made machines h's agent lists.
func (w *world) containerMachines(h *host) []cniMachine {
	w.t.Helper()
	var all, ms []cniMachine
	w.cliJSON(h, &all, "machines", "list", "--source", "cni")
	for _, m := range all {
		if m.Host == h.name {
			ms = append(ms, m)
		}
	}
	return ms
}

func (w *world) machineOf(h *host, containerID string) cniMachine {
	w.t.Helper()
	for _, m := range w.containerMachines(h) {
		if m.Metadata["container_id"] == containerID {
			return m
		}
	}
	w.t.Fatalf("no machine for container %s on %s: %+v", containerID, h.name, w.containerMachines(h))
	return cniMachine{}
}

var reCounter = regexp.MustCompile(`counter packets \d+ bytes \d+ `)

var reAddr = regexp.MustCompile(`(?m)^Address:\s+(fdaa:[0-9a-f:]+)\s*$`)

// nslookup resolves name inside a container through its resolv.conf and returns
// the sorted 6PN addresses (empty when the name does not resolve).
func (r *runtimeHost) nslookup(container, name string) []string {
	out, _ := r.exec(20*time.Second, container, "nslookup", "-type=AAAA", name)
	var got []string
	for _, m := range reAddr.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	sort.Strings(got)
	return got
}

func (r *runtimeHost) fetch(container, addr string, timeout time.Duration) (string, error) {
	// busybox-static's wget -T crashes (SIGSEGV); its timeout applet bounds it instead.
	out, err := r.exec(timeout+10*time.Second, container, "busybox", "timeout", strconv.Itoa(int(timeout.Seconds())), "wget", "-q", "-O", "-",
		fmt.Sprintf("http://[%s]:8080/", addr))
	return strings.TrimSpace(out), err
}

// digShort is `dogwood dig --org ORG --short NAME` on h's agent, sorted.
func (w *world) digShort(h *host, org, name string) []string {
	out, err := w.try(h, "dig", "--org", org, "--short", name)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	f := strings.Fields(out)
	sort.Strings(f)
	return f
}

func TestCNIPodman(t *testing.T) {
	requireContainers(t)
	w := newWorld(t, "cn")
	step := stepLogger(t)
	h1 := w.addHost(1, hostOpts{region: "ord", hostMounts: true})
	h2 := w.addHost(2, hostOpts{region: "ams", hostMounts: true})
	w.waitMembers([]*host{h1, h2}, "h1", "h2")
	w.cli(h1, "orgs", "create", "acme")
	w.cli(h1, "orgs", "create", "globex")
	w.cli(h1, "apps", "create", "web", "--org", "acme")
	w.cli(h1, "apps", "create", "api", "--org", "globex")
	r1, r2 := w.runtime(h1), w.runtime(h2)
	for _, r := range []*runtimeHost{r1, r2} {
		r.network("acme-web", map[string]any{"org": "acme", "app": "web", "agent": r.h.sock, "services": []string{"http:tcp:8080"},
			"metadata": map[string]string{"tier": "front"},
			"checks":   []any{map[string]any{"kind": "tcp", "target": "8080", "interval": "1s", "timeout": "500ms", "rise": 1}}})
		r.network("globex-api", map[string]any{"org": "globex", "app": "api", "agent": r.h.sock})
	}
	step("hosts, orgs and runtimes ready")

	// An acme container on each host: each resolves web.internal to both and
	// fetches from the other across hosts.
	id1 := r1.httpd("c1", "acme-web")
	id2 := r2.httpd("c2", "acme-web")
	step("c1 on h1, c2 on h2 started")
	m1, m2 := w.machineOf(h1, id1), w.machineOf(h2, id2)
	if m1.Source != "cni" || m1.Metadata["tier"] != "front" || m1.Netns == "" {
		t.Errorf("c1's machine: %+v", m1)
	}
	both := []string{m1.Address, m2.Address}
	sort.Strings(both)
	for _, c := range []struct {
		r         *runtimeHost
		name, dst string
		want      string
	}{{r1, "c1", m2.Address, "c2"}, {r2, "c2", m1.Address, "c1"}} {
		if err := e2eproc.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			if got := c.r.nslookup(c.name, "web.internal"); strings.Join(got, ",") != strings.Join(both, ",") {
				return fmt.Errorf("web.internal in %s: %v, want %v", c.name, got, both)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := e2eproc.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			body, err := c.r.fetch(c.name, c.dst, 2*time.Second)
			if err != nil || body != c.want {
				return fmt.Errorf("%s → http://[%s]:8080: %q %v", c.name, c.dst, body, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	step("acme containers resolve each other and talk across hosts")
	// The config's health check runs against the container (httpd on 8080).
	if err := e2eproc.Eventually(20*time.Second, 250*time.Millisecond, func() error {
		if m := w.machineOf(h1, id1); m.Health != "passing" {
			return fmt.Errorf("c1's health: %q", m.Health)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// A globex container reaches neither and cannot resolve acme's names.
	r1.httpd("g1", "globex-api")
	if got := r1.nslookup("g1", "api.internal"); len(got) != 1 {
		t.Errorf("globex's own name from g1: %v", got)
	}
	if got := r1.nslookup("g1", "web.internal"); len(got) != 0 {
		t.Errorf("g1 (globex) resolves acme's web.internal: %v", got)
	}
	for _, dst := range both {
		if body, err := r1.fetch("g1", dst, 2*time.Second); err == nil {
			t.Errorf("g1 (globex) fetched from acme's %s: %q", dst, body)
		}
	}
	step("globex isolated")

	// podman rm -f: gone from DNS on every host within 1 s.
	r2.rm("c2")
	t0 := time.Now()
	for _, h := range []*host{h1, h2} {
		if err := e2eproc.Eventually(5*time.Second, 20*time.Millisecond, func() error {
			if got := w.digShort(h, "acme", "web.internal"); strings.Join(got, ",") != m1.Address {
				return fmt.Errorf("web.internal on %s after podman rm c2: %v", h.name, got)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	gone := time.Since(t0)
	t.Logf("CNI: c2 out of DNS on both hosts %v after podman rm returned", gone.Round(time.Millisecond))
	if gone > time.Second {
		t.Errorf("c2 left DNS %v after podman rm (want ≤ 1 s)", gone)
	}
	if ms := w.containerMachines(h2); len(ms) != 0 {
		t.Errorf("machines left on h2: %+v", ms)
	}
	step("podman rm leaves DNS")

	// Many containers in a row leave no veth, namespace, machine or nftables element.
	n := 20
	if v, err := strconv.Atoi(os.Getenv("DOGWOOD_CNI_CONTAINERS")); err == nil && v > 0 {
		n = v
	}
	before := leftovers(t, h1)
	for i := 0; i < n; i++ {
		out, err := r1.podman(60*time.Second, append(append([]string{"run", "--rm", "--network", "acme-web"}, ulimits()...),
			r1.image, "ip", "-6", "addr", "show", "eth0")...)
		if err != nil || !strings.Contains(out, "inet6 fdaa:") {
			t.Fatalf("container %d: %v\n%s", i, err, out)
		}
	}
	if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		if after := leftovers(t, h1); after != before {
			return fmt.Errorf("after %d containers:\n%s\nbefore:\n%s", n, after, before)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	step(fmt.Sprintf("%d containers run and removed, nothing left", n))

	// A container whose runtime died without a DEL: conmon and the container's init
	// killed, and its namespace unmounted as a reboot would. The agent reaps it.
	rid := r1.run("r1", "acme-web", "sleep", "600")
	rm := w.machineOf(h1, rid)
	out, err := r1.podman(30*time.Second, "inspect", "-f", "{{.State.ConmonPid}} {{.State.Pid}}", "r1")
	pids := strings.Fields(out)
	if err != nil || len(pids) != 2 {
		t.Fatalf("podman inspect r1: %v %s", err, out)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	syscall.Unmount(rm.Netns, syscall.MNT_DETACH)
	os.Remove(rm.Netns)
	t0 = time.Now()
	if err := e2eproc.Eventually(40*time.Second, 250*time.Millisecond, func() error {
		for _, m := range w.containerMachines(h1) {
			if m.ID == rm.ID {
				return fmt.Errorf("machine %s of the dead container is still there", m.ID)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("CNI: dead container's machine reaped %v after its namespace went", time.Since(t0).Round(100*time.Millisecond))
	r1.podman(60*time.Second, "rm", "-f", "-t", "0", "r1") // the runtime's late DEL: nothing to do
	step("dead container reaped")

	// Errors are CNI's JSON, straight from the plugin as a runtime would call it.
	probe := w.netns("cp")
	for _, c := range []struct {
		name string
		conf string
		code int
		msg  string
	}{
		{"unknown key", `{"cniVersion":"1.0.0","name":"x","type":"dogwood","org":"acme","app":"web","agent":"` + h1.sock + `","colour":"red"}`, 7, "unknown field"},
		{"unknown org", `{"cniVersion":"1.0.0","name":"x","type":"dogwood","org":"nope","app":"web","agent":"` + h1.sock + `"}`, 7, "nope"},
		{"no app", `{"cniVersion":"1.0.0","name":"x","type":"dogwood","org":"acme","agent":"` + h1.sock + `"}`, 7, "app"},
		{"stopped agent", `{"cniVersion":"1.0.0","name":"x","type":"dogwood","org":"acme","app":"web","agent":"` + filepath.Join(w.dir, "gone.sock") + `"}`, 11, "gone.sock"},
	} {
		e, exit := runPlugin(t, "ADD", "probe-"+strings.ReplaceAll(c.name, " ", "-"), "/run/netns/"+probe, c.conf)
		if exit == 0 || e.Code != c.code || !strings.Contains(e.Msg+e.Details, c.msg) {
			t.Errorf("%s: exit %d, error %+v; want code %d mentioning %q", c.name, exit, e, c.code, c.msg)
		}
	}
	if ms := w.containerMachines(h1); len(ms) != 2 { // c1, g1
		t.Errorf("failed ADDs left machines: %+v", ms)
	}
	// A stopped agent, through the runtime: podman reports the plugin's error.
	h2.agent.stop(5 * time.Second)
	out, err = r2.podman(60*time.Second, append(append([]string{"run", "--rm", "--network", "acme-web"}, ulimits()...), r2.image, "true")...)
	if err == nil || !strings.Contains(out, "cannot reach the dogwood agent at "+h2.sock) {
		t.Errorf("podman run with h2's agent stopped: %v\n%s", err, out)
	}
	step("error JSON")
}

type cniErr struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details"`
}

// runPlugin runs the plugin binary as a runtime does and decodes its error.
func runPlugin(t *testing.T, cmd, container, netns, conf string) (cniErr, int) {
	t.Helper()
	c := exec.Command(filepath.Join(cniPluginDir(t), "dogwood"))
	c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + container, "CNI_NETNS=" + netns, "CNI_IFNAME=eth0", "CNI_PATH=" + cniPluginDir(t)}
	c.Stdin = strings.NewReader(conf)
	out, err := c.Output()
	exit := 0
	if ee, ok := err.(*exec.ExitError); ok {
		exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var e cniErr
	if exit != 0 {
		if err := json.Unmarshal(out, &e); err != nil {
			t.Errorf("plugin %s error output is not CNI JSON: %v\n%s", cmd, err, out)
		}
	}
	return e, exit
}

// leftovers describes what containers could leave on h: machine veths, the
// namespaces under /run/netns podman made, container machines, and the nftables
// ruleset's machine entries.
func leftovers(t *testing.T, h *host) string {
	var b strings.Builder
	links, _ := e2eproc.NSRun(10*time.Second, h.ns, "ip", "-o", "link", "show")
	for _, l := range strings.Split(links, "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "dwm") {
			fmt.Fprintf(&b, "veth %s\n", strings.SplitN(f[1], "@", 2)[0])
		}
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "netns-") || strings.HasPrefix(e.Name(), "cni-") {
			fmt.Fprintf(&b, "netns %s\n", e.Name())
		}
	}
	for _, m := range h.w.containerMachines(h) {
		fmt.Fprintf(&b, "machine %s %s\n", m.ID, m.Address)
	}
	nft, _ := e2eproc.NSRun(10*time.Second, h.ns, "nft", "list", "ruleset")
	for _, l := range strings.Split(reCounter.ReplaceAllString(nft, ""), "\n") {
		if strings.Contains(l, "dwm") || strings.Contains(l, "fdaa:") && strings.Contains(l, "elements") {
			fmt.Fprintf(&b, "nft %s\n", strings.TrimSpace(l))
		}
	}
	return b.String()
}
