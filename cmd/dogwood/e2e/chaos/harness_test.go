package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
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

// The harness: an underlay bridge in a namespace of its own, one namespace per host
// (198.18.0.N/24), and the agents as real processes. Every name carries a per-run
// prefix and is removed on cleanup.

func requireEnv(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping fault-injection suite in -short mode")
	}
	needs.Root(t)
	needs.TUN(t)
	needs.Tools(t, "ip", "nft", "dig", "busybox", "curl")
}

// proc is an agent process in its own process group.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(logPath string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "=== start %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the group and waits up to grace before SIGKILL.
func (p *proc) signal(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

type host struct {
	name, ns, addr, sock, dataDir, iface, log string
	idx                                       int
	agent                                     *proc
	gateway                                   bool
}

type world struct {
	t    *testing.T
	pfx  string
	bin  string
	dir  string
	br   string
	key  string
	mu   sync.Mutex
	nss  []string
	hist []string
	h    []*host
}

func newWorld(t *testing.T) *world {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	dir, err := os.MkdirTemp("", "dwchaos-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	w := &world{t: t, pfx: "dc" + hex.EncodeToString(b), dir: dir}
	t.Cleanup(w.cleanup)
	if src := os.Getenv("DOGWOOD_BIN"); src != "" {
		w.bin, err = e2eproc.CopyDogwood(src, dir)
	} else {
		w.bin, err = e2eproc.BuildDogwood(dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.br = w.netns("br")
	w.must("ip", "-n", w.br, "link", "add", "br0", "type", "bridge")
	w.must("ip", "-n", w.br, "link", "set", "br0", "up")
	key, err := e2eproc.Run(10*time.Second, nil, w.bin, "keygen")
	if err != nil {
		t.Fatal(err)
	}
	w.key = filepath.Join(dir, "gossip.key")
	os.WriteFile(w.key, []byte(strings.TrimSpace(key)+"\n"), 0o600)
	return w
}

func (w *world) must(name string, args ...string) string {
	w.t.Helper()
	out, err := e2eproc.Run(20*time.Second, nil, name, args...)
	if err != nil {
		w.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (w *world) netns(suffix string) string {
	ns, err := w.tryNetns(suffix)
	if err != nil {
		w.t.Fatal(err)
	}
	return ns
}

// tryNetns creates a namespace; clients call it from their own goroutines.
func (w *world) tryNetns(suffix string) (string, error) {
	ns := w.pfx + suffix
	w.mu.Lock()
	w.nss = append(w.nss, ns)
	w.mu.Unlock()
	if out, err := e2eproc.Run(20*time.Second, nil, "ip", "netns", "add", ns); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v %s", ns, err, out)
	}
	e2eproc.Run(10*time.Second, nil, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns, nil
}

func (w *world) logf(format string, a ...any) {
	line := fmt.Sprintf("%s "+format, append([]any{time.Now().UTC().Format("15:04:05.000")}, a...)...)
	w.mu.Lock()
	w.hist = append(w.hist, line)
	w.mu.Unlock()
	if testing.Verbose() {
		fmt.Println(line)
	}
}

// cli runs the dogwood CLI against host h's agent.
func (w *world) cli(h *host, args ...string) (string, error) {
	return e2eproc.Run(40*time.Second, []string{"DOGWOOD_AGENT=" + h.sock}, w.bin, args...)
}

func (w *world) addHost(idx int, gateway bool) *host {
	w.t.Helper()
	h := &host{idx: idx, name: fmt.Sprintf("h%d", idx), addr: fmt.Sprintf("198.18.0.%d", idx), gateway: gateway}
	h.ns = w.netns(fmt.Sprintf("h%d", idx))
	h.iface = fmt.Sprintf("%sw%d", w.pfx, idx)
	h.sock = filepath.Join(w.dir, h.name+".sock")
	h.dataDir = filepath.Join(w.dir, h.name)
	h.log = filepath.Join(w.dir, h.name+".log")
	hv, bp := fmt.Sprintf("%su%d", w.pfx, idx), fmt.Sprintf("%sp%d", w.pfx, idx)
	w.must("ip", "link", "add", hv, "netns", h.ns, "type", "veth", "peer", "name", bp, "netns", w.br)
	w.must("ip", "-n", w.br, "link", "set", bp, "master", "br0", "up")
	w.must("ip", "-n", h.ns, "addr", "add", h.addr+"/24", "dev", hv)
	w.must("ip", "-n", h.ns, "link", "set", hv, "up")
	w.h = append(w.h, h)
	if err := w.start(h); err != nil {
		w.t.Fatal(err)
	}
	return h
}

func (w *world) args(h *host) []string {
	a := []string{w.bin, "agent", "--name", h.name, "--region", "ord",
		"--gossip-addr", h.addr + ":7946", "--gossip-key-file", w.key,
		"--wireguard", "userspace", "--wg-interface", h.iface, "--wg-port", "51820",
		"--api-socket", h.sock, "--data-dir", h.dataDir,
		"--upstream-dns", "198.18.0.254", "--log-level", "debug"}
	if h.gateway {
		a = append(a, "--gateway", "--public-endpoint", h.addr+":51820")
	}
	// Every host knows every other, so any of them can be down when one starts.
	for _, o := range []int{1, 2, 3, 4, 5} {
		if o != h.idx {
			a = append(a, "--join", fmt.Sprintf("198.18.0.%d:7946", o))
		}
	}
	return a
}

// start runs h's agent and waits until its API answers (or it exits).
func (w *world) start(h *host) error {
	p, err := startProc(h.log, e2eproc.InNS(h.ns, w.args(h)...)...)
	if err != nil {
		return err
	}
	h.agent = p
	return e2eproc.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if p.exited() {
			return fmt.Errorf("agent %s exited: %v\n%s", h.name, p.err, tail(h.log, 3000))
		}
		_, err := w.cli(h, "status")
		return err
	})
}

func (w *world) cleanup() {
	if w.t.Failed() {
		w.mu.Lock()
		hist := w.hist
		w.mu.Unlock()
		if len(hist) > 120 {
			hist = hist[len(hist)-120:]
		}
		w.t.Logf("history (last %d events):\n%s", len(hist), strings.Join(hist, "\n"))
		for _, h := range w.h {
			w.t.Logf("=== %s agent log (tail):\n%s", h.name, tail(h.log, 6000))
		}
	}
	for _, h := range w.h {
		if h.agent != nil {
			h.agent.signal(syscall.SIGTERM, 3*time.Second)
		}
	}
	w.mu.Lock()
	nss := w.nss
	w.mu.Unlock()
	// Machine namespaces the agents made for machines we created, too.
	if out, err := e2eproc.Run(10*time.Second, nil, "ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], w.pfx) {
				nss = append(nss, f[0])
			}
		}
	}
	seen := map[string]bool{}
	for _, ns := range nss {
		if seen[ns] {
			continue
		}
		seen[ns] = true
		if out, _ := e2eproc.Run(5*time.Second, nil, "ip", "netns", "pids", ns); out != "" {
			for _, f := range strings.Fields(out) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		e2eproc.Run(10*time.Second, nil, "ip", "netns", "del", ns)
		os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
	for _, h := range w.h {
		os.Remove(filepath.Join("/var/run/wireguard", h.iface+".sock"))
	}
	os.RemoveAll(w.dir)
}

// partition drops all underlay traffic between the hosts in side and the others,
// with an nftables table in each host's namespace.
func (w *world) partition(side []*host) {
	in := map[*host]bool{}
	for _, h := range side {
		in[h] = true
	}
	for _, h := range w.h {
		var other []string
		for _, o := range w.h {
			if in[o] != in[h] {
				other = append(other, o.addr)
			}
		}
		if len(other) == 0 {
			continue
		}
		set := strings.Join(other, ", ")
		rules := fmt.Sprintf(`table inet chaos {
	chain in { type filter hook input priority -10; ip saddr { %s } drop; }
	chain out { type filter hook output priority -10; ip daddr { %s } drop; }
}
`, set, set)
		f := filepath.Join(w.dir, h.name+".nft")
		os.WriteFile(f, []byte(rules), 0o644)
		if out, err := e2eproc.NSRun(10*time.Second, h.ns, "nft", "-f", f); err != nil {
			w.t.Fatalf("partition %s: %v %s", h.name, err, out)
		}
	}
}

func (w *world) heal() {
	for _, h := range w.h {
		e2eproc.NSRun(10*time.Second, h.ns, "nft", "delete", "table", "inet", "chaos")
	}
}

func decode[T any](out string) (T, error) {
	var v T
	err := json.Unmarshal([]byte(out), &v)
	return v, err
}
