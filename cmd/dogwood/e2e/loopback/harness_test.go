// Package loopback runs real `dogwood agent` processes on 127.0.0.1 (WireGuard off)
// and drives them with the real CLI and the real dig, the way an operator would.
//
// The binary is built once per test run (with -race when the tests run with -race),
// or taken from $DOGWOOD_BIN. Every agent gets free loopback ports, its own data dir
// and API socket in temp dirs, and a fake upstream resolver in the test process, so
// nothing leaves 127.0.0.1 and /etc/resolv.conf is never read. Every process is
// killed and every temp file removed in t.Cleanup, pass or fail.
package loopback

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
	"github.com/miekg/dns"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// dogwoodBin returns the binary under test, building it on first use.
func dogwoodBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real agent processes; skipped with -short")
	}
	buildOnce.Do(func() {
		if p := os.Getenv("DOGWOOD_BIN"); p != "" {
			binPath, buildErr = filepath.Abs(p)
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "dogwood-e2e-bin-"); buildErr != nil {
			return
		}
		var flags []string
		if raceEnabled {
			flags = append(flags, "-race")
		}
		binPath, buildErr = e2eproc.BuildDogwood(buildDir, flags...)
	})
	if buildErr != nil {
		t.Fatalf("dogwood binary: %v", buildErr)
	}
	return binPath
}

// ---- ports -----------------------------------------------------------------------

var ports = e2eproc.NewPorts()

// freePort returns a loopback port free for both TCP and UDP (gossip and DNS use
// both), never handing out the same port twice in this process.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := ports.Next()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// ---- CLI -------------------------------------------------------------------------

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// run runs the dogwood binary; a command that does not finish in 20 s fails the test
// (nothing the CLI does may hang).
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runBin(t, dogwoodBin(t), args...)
}

// runBin is run with another dogwood binary (an older release's CLI).
func runBin(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// No default socket; a -race binary must not sleep 1 s at exit.
	cmd.Env = append(os.Environ(), "DOGWOOD_AGENT=/nonexistent/dogwood-e2e.sock", "GORACE=atexit_sleep_ms=0")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("dogwood %s: did not finish in 20s", strings.Join(args, " "))
	}
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("dogwood %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("dogwood %s printed a stack trace:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// ---- agents ----------------------------------------------------------------------

type agent struct {
	t                   *testing.T
	name, region        string
	dataDir, sock, log  string
	gossipPort, dnsPort int
	keyFile, upstream   string
	join                []string
	cmd                 *exec.Cmd
	done                chan struct{}
	exitErr             error
	logFile             *os.File
	cleanupRegistered   bool
	extraArgs           []string
	// bin, when set, is the agent binary instead of the one under test (an older
	// release in a mixed-version cluster).
	bin string
}

// cluster is a set of agents sharing a gossip key and a fake upstream.
type cluster struct {
	t        *testing.T
	dir      string // data dirs and logs
	sockDir  string // short path for unix sockets (108-byte limit)
	keyFile  string
	upstream *fakeUpstream
	agents   []*agent
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dogwoodBin(t)
	c := &cluster{t: t, dir: t.TempDir()}
	sd, err := os.MkdirTemp("", "dw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	c.sockDir = sd
	c.keyFile = c.newKey("gossip.key")
	c.upstream = startFakeUpstream(t)
	return c
}

// newKey writes a fresh key from `dogwood keygen` into the cluster dir.
func (c *cluster) newKey(name string) string {
	c.t.Helper()
	r := run(c.t, "keygen")
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 44 {
		c.t.Fatalf("keygen: %s", r)
	}
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(r.stdout), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// add creates (but does not start) an agent joining the first agent of the cluster.
func (c *cluster) add(name, region string) *agent {
	c.t.Helper()
	a := &agent{
		t: c.t, name: name, region: region,
		dataDir: filepath.Join(c.dir, name, "data"), sock: filepath.Join(c.sockDir, name+".sock"),
		log: filepath.Join(c.dir, name+".log"), gossipPort: freePort(c.t), dnsPort: freePort(c.t),
		keyFile: c.keyFile, upstream: c.upstream.addr,
	}
	if len(c.agents) > 0 {
		a.join = []string{c.agents[0].gossipAddr()}
	}
	c.agents = append(c.agents, a)
	return a
}

// startN adds and starts agents with the given regions, named h1, h2, …, and waits
// until every one of them sees all of them alive.
func (c *cluster) startN(regions ...string) []*agent {
	c.t.Helper()
	var out []*agent
	for _, r := range regions {
		a := c.add(fmt.Sprintf("h%d", len(c.agents)+1), r)
		a.start()
		out = append(out, a)
	}
	c.waitMembers(out, 10*time.Second)
	return out
}

// waitMembers waits until every agent in as lists exactly as, all alive.
func (c *cluster) waitMembers(as []*agent, timeout time.Duration) {
	c.t.Helper()
	eventually(c.t, timeout, func() (bool, string) {
		for _, a := range as {
			ms := a.members()
			alive := 0
			for _, m := range ms {
				if m.Status == "alive" {
					alive++
				}
			}
			if alive != len(as) {
				return false, fmt.Sprintf("%s sees %+v", a.name, ms)
			}
		}
		return true, ""
	})
}

func (a *agent) gossipAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.gossipPort) }

func (a *agent) args() []string {
	args := []string{"agent",
		"--name", a.name, "--data-dir", a.dataDir, "--region", a.region,
		"--gossip-addr", a.gossipAddr(), "--gossip-key-file", a.keyFile,
		"--wireguard", "off", "--api-socket", a.sock,
		"--dns-listen", fmt.Sprintf("127.0.0.1:%d", a.dnsPort),
		"--upstream-dns", a.upstream, "--log-level", "debug",
	}
	for _, j := range a.join {
		args = append(args, "--join", j)
	}
	return append(args, a.extraArgs...)
}

// start launches the agent and waits until its API answers.
func (a *agent) start() {
	t := a.t
	t.Helper()
	if !a.cleanupRegistered {
		a.cleanupRegistered = true
		t.Cleanup(a.cleanup)
	}
	f, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	a.logFile = f
	bin := dogwoodBin(t)
	if a.bin != "" {
		bin = a.bin
	}
	a.cmd = exec.Command(bin, a.args()...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	a.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := a.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", a.name, err)
	}
	a.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		a.exitErr = cmd.Wait()
		f.Close()
		close(done)
	}(a.cmd, a.done)
	eventually(t, 15*time.Second, func() (bool, string) {
		select {
		case <-a.done:
			t.Fatalf("agent %s exited at start: %v\n%s", a.name, a.exitErr, a.logTail(30))
		default:
		}
		r := a.cli("status", "--json")
		return r.code == 0, r.String()
	})
}

func (a *agent) running() bool {
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits for the process to exit.
func (a *agent) signal(sig syscall.Signal, timeout time.Duration) time.Duration {
	a.t.Helper()
	start := time.Now()
	if !a.running() {
		a.t.Fatalf("agent %s is not running", a.name)
	}
	a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(timeout):
		a.t.Fatalf("agent %s did not exit within %v of %v", a.name, timeout, sig)
	}
	return time.Since(start)
}

func (a *agent) kill9() { a.t.Helper(); a.signal(syscall.SIGKILL, 5*time.Second) }

func (a *agent) cleanup() {
	if a.running() {
		a.cmd.Process.Kill()
		<-a.done
	}
	b, _ := os.ReadFile(a.log)
	if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		a.t.Errorf("agent %s: data race in its log:\n%s", a.name, raceReport(b))
	}
	if a.t.Failed() {
		a.t.Logf("---- last lines of %s's log ----\n%s", a.name, a.logTail(40))
	}
}

func raceReport(b []byte) string {
	i := bytes.Index(b, []byte("WARNING: DATA RACE"))
	end := i + 6000
	if end > len(b) {
		end = len(b)
	}
	return string(b[i:end])
}

func (a *agent) logTail(n int) string {
	b, _ := os.ReadFile(a.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cli runs a CLI command against this agent, with the agent's own release (as an
// operator on that host would).
func (a *agent) cli(args ...string) result {
	a.t.Helper()
	if a.bin != "" {
		return runBin(a.t, a.bin, append([]string{"--agent", a.sock}, args...)...)
	}
	return run(a.t, append([]string{"--agent", a.sock}, args...)...)
}

// must runs a CLI command that has to succeed and returns its stdout.
func (a *agent) must(args ...string) string {
	a.t.Helper()
	r := a.cli(args...)
	if r.code != 0 {
		a.t.Fatalf("%s: dogwood %s: %s", a.name, strings.Join(args, " "), r)
	}
	return r.stdout
}

// mustJSON runs a CLI command with --json and decodes its output.
func (a *agent) mustJSON(v any, args ...string) string {
	a.t.Helper()
	out := a.must(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		a.t.Fatalf("%s: dogwood %s --json: %v\n%s", a.name, strings.Join(args, " "), err, out)
	}
	return out
}

type member struct {
	Name   string `json:"name"`
	HostID uint32 `json:"host_id"`
	Region string `json:"region"`
	Addr   string `json:"addr"`
	Status string `json:"status"`
}

func (a *agent) members() []member {
	a.t.Helper()
	var ms []member
	a.mustJSON(&ms, "members")
	return ms
}

func (a *agent) memberStatus(name string) string {
	for _, m := range a.members() {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

type machine struct {
	ID           string            `json:"id"`
	App          string            `json:"app"`
	Org          string            `json:"org"`
	Network      string            `json:"network"`
	Region       string            `json:"region"`
	Host         string            `json:"host"`
	Address      string            `json:"address"`
	State        string            `json:"state"`
	ProcessGroup string            `json:"process_group"`
	Metadata     map[string]string `json:"metadata"`
	Services     []string          `json:"services"`
}

type org struct {
	Slug     string `json:"slug"`
	Networks []struct {
		Name   string `json:"name"`
		ID     uint32 `json:"id"`
		Prefix string `json:"prefix"`
	} `json:"networks"`
}

// prefix returns an org's default network prefix as `orgs list --json` shows it.
func (a *agent) prefix(slug string) string {
	a.t.Helper()
	var orgs []org
	a.mustJSON(&orgs, "orgs", "list")
	for _, o := range orgs {
		if o.Slug == slug {
			for _, n := range o.Networks {
				if n.Name == "default" {
					return n.Prefix
				}
			}
		}
	}
	a.t.Fatalf("%s: org %q has no default network in orgs list", a.name, slug)
	return ""
}

// ---- polling ---------------------------------------------------------------------

// eventually polls cond every 10 ms until it holds and returns how long that took;
// it fails the test with cond's last message after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for {
		ok, msg := cond()
		if ok {
			return time.Since(start)
		}
		last = msg
		if time.Since(start) > timeout {
			t.Fatalf("condition not met within %v: %s", timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- fake upstream resolver ------------------------------------------------------

// fakeUpstream answers every A question with 192.0.2.1 (TEST-NET-1) and counts them.
type fakeUpstream struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	port := freePort(t)
	f := &fakeUpstream{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		if len(q.Question) == 1 {
			qq := q.Question[0]
			f.mu.Lock()
			f.seen = append(f.seen, strings.ToLower(qq.Name))
			f.mu.Unlock()
			if qq.Qtype == dns.TypeA {
				rr, _ := dns.NewRR(qq.Name + " 60 IN A 192.0.2.1")
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})
	// The server is handed sockets already bound, so nothing can take the port
	// between choosing it and serving on it.
	pc, err := net.ListenPacket("udp", f.addr)
	if err != nil {
		t.Fatalf("fake upstream udp: %v", err)
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		pc.Close()
		t.Fatalf("fake upstream tcp: %v", err)
	}
	var servers []*dns.Server
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan error, 1)
		s.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := s.ActivateAndServe(); err != nil {
				select {
				case started <- err:
				default:
				}
			}
		}()
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("fake upstream: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("fake upstream did not start")
		}
		servers = append(servers, s)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
		}
	})
	return f
}

func (f *fakeUpstream) queries(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.seen {
		if s == dns.Fqdn(strings.ToLower(name)) {
			n++
		}
	}
	return n
}

// ---- dig -------------------------------------------------------------------------

const digPath = "/usr/bin/dig"

func needDig(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(digPath); err != nil {
		needs.Skip(t, "%s not found (apt-get install dnsutils)", digPath)
	}
}

// digAnswer is a parsed dig (or `dogwood dig`) answer.
type digAnswer struct {
	rcode     string
	flags     []string
	answer    []dns.RR
	authority []dns.RR
	raw       string
}

func (d digAnswer) has(flag string) bool {
	for _, f := range d.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// data returns the sorted answer data, one string per record (TXT strings joined, as
// clients join them).
func (d digAnswer) data() []string {
	var out []string
	for _, rr := range d.answer {
		out = append(out, rrData(rr))
	}
	sort.Strings(out)
	return out
}

func rrData(rr dns.RR) string {
	switch v := rr.(type) {
	case *dns.AAAA:
		return v.AAAA.String()
	case *dns.A:
		return v.A.String()
	case *dns.TXT:
		return strings.Join(v.Txt, "")
	case *dns.PTR:
		return v.Ptr
	case *dns.SRV:
		return fmt.Sprintf("%d %d %d %s", v.Priority, v.Weight, v.Port, v.Target)
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// dig runs the real dig against an agent's loopback listener, scoped to a network
// by EDNS Client Subnet when subnet is set.
func (a *agent) dig(subnet string, q ...string) digAnswer {
	a.t.Helper()
	args := []string{"@127.0.0.1", "-p", fmt.Sprint(a.dnsPort), "+noall", "+comments", "+answer", "+authority",
		"+tries=1", "+time=3"}
	if subnet != "" {
		args = append(args, "+subnet="+subnet)
	}
	args = append(args, q...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, digPath, args...).CombinedOutput()
	if err != nil {
		a.t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	d, err := parseDig(string(out))
	if err != nil {
		a.t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return d
}

// parseDig reads dig's presentation format (also what `dogwood dig` prints).
func parseDig(out string) (digAnswer, error) {
	d := digAnswer{raw: out}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if i := strings.Index(line, "status: "); i >= 0 {
				d.rcode = strings.TrimSuffix(strings.Fields(line[i+len("status: "):])[0], ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			f := strings.TrimPrefix(line, ";; flags:")
			f, _, _ = strings.Cut(f, ";")
			d.flags = strings.Fields(f)
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = "answer"
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = "authority"
		case strings.HasPrefix(line, ";"):
			if strings.HasSuffix(line, "SECTION:") {
				section = ""
			}
		default:
			rr, err := dns.NewRR(line)
			if err != nil {
				return d, fmt.Errorf("record %q: %v", line, err)
			}
			switch section {
			case "answer":
				d.answer = append(d.answer, rr)
			case "authority":
				d.authority = append(d.authority, rr)
			}
		}
	}
	if d.rcode == "" {
		return d, errors.New("no header in dig output (no answer?)")
	}
	return d, nil
}
