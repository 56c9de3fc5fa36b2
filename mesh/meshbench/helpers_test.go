package meshbench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
)

var benchKey = []byte("meshbench-gossip-key-32-bytes!!!")

// benchOn skips the test unless DOGWOOD_BENCH=1.
func benchOn(t *testing.T) {
	t.Helper()
	if os.Getenv("DOGWOOD_BENCH") != "1" {
		t.Skip("benchmark: set DOGWOOD_BENCH=1 (make bench)")
	}
}

func envInts(name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// Every host gets its own loopback address; 127.0.0.0/8 is all local on Linux.
var ipSeq atomic.Int32

func nextIP() string {
	k := int(ipSeq.Add(1)) - 1
	return fmt.Sprintf("127.0.%d.%d", 100+k/250, 1+k%250)
}

type benchNode struct {
	*mesh.Node
	tr   *CountingTransport
	reg  *prometheus.Registry
	ip   string
	dir  string
	addr string
}

type cluster struct {
	t     testing.TB
	nodes []*benchNode
	tune  func(*memberlist.Config)
}

// sharedCPU keeps memberlist's failure detector from mistaking a starved process for
// dead hosts when hundreds of agents share two cores: a probe that waits in the run
// queue for longer than ProbeTimeout (500ms by default) makes the prober suspect a
// healthy host, the refutation and the suspicion are gossiped to everyone, and that
// extra work starves more probes. Each real host has its own CPU; the protocol and
// every other timing are unchanged.
func sharedCPU(c *memberlist.Config) {
	c.ProbeTimeout = 3 * time.Second
	c.ProbeInterval = 5 * time.Second
	c.SuspicionMult = 6
}

// largeCluster is where newCluster switches to sharedCPU and tmpfs data dirs.
const largeCluster = 100

// dataDir is a fresh data dir. Large clusters put theirs on tmpfs (/dev/shm): each
// agent's start syncs its identity and host record to disk, and hundreds of fsyncs on
// a shared disk made starting the cluster take minutes, which measured the disk.
func (c *cluster) dataDir() string {
	if c.tune == nil {
		return c.t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "meshbench-")
	if err != nil {
		return c.t.TempDir()
	}
	c.t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startNode starts one agent with mesh.Config defaults except what running several
// in one process needs: its own data dir, its own loopback address, and a
// transport handle (the agent's gossip.Transport, wrapped to count bytes).
func (c *cluster) startNode(name string, gated bool, join []string) *benchNode {
	c.t.Helper()
	ip := nextIP()
	tr, err := NewCountingTransport(ip, gated)
	if err != nil {
		c.t.Fatalf("transport on %s: %v", ip, err)
	}
	dir := c.dataDir()
	reg := prometheus.NewRegistry()
	cfg := mesh.Config{
		Name: name, DataDir: dir, GossipAddr: fmt.Sprintf("%s:%d", ip, tr.Port()),
		Join: join, GossipKey: benchKey, Transport: tr, Registerer: reg, TuneMemberlist: c.tune,
	}
	if os.Getenv("DOGWOOD_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", name)
	}
	n, err := mesh.Start(cfg)
	if err != nil {
		tr.Shutdown()
		c.t.Fatalf("start %s: %v", name, err)
	}
	bn := &benchNode{Node: n, tr: tr, reg: reg, ip: ip, dir: dir, addr: fmt.Sprintf("%s:%d", ip, tr.Port())}
	c.nodes = append(c.nodes, bn)
	return bn
}

// newCluster starts size agents; all but the first join the first. With gated set
// every transport starts closed (see CountingTransport) and the caller opens them.
// One after another: starting large clusters in concurrent batches of 25 (each
// joining a different running agent) halved the start (500 agents: 1m19s-1m25s
// instead of 3m6s) but membership then took 2m8s-2m45s more to converge, against
// 1.6s after a sequential start.
func newCluster(t testing.TB, size int, gated bool) *cluster {
	c := &cluster{t: t}
	if size > largeCluster {
		c.tune = sharedCPU
	}
	t.Cleanup(c.close)
	var join []string
	for i := 0; i < size; i++ {
		n := c.startNode(fmt.Sprintf("b%02d", i), gated, join)
		if i == 0 {
			join = []string{n.addr}
		}
	}
	return c
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Close()
		}()
	}
	wg.Wait()
	c.nodes = nil
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// aliveCount is how many members (self included) n's memberlist sees alive.
func aliveCount(n *benchNode) int {
	alive := 0
	for _, m := range n.Gossip().Members() {
		if m.Status == catalog.StatusAlive {
			alive++
		}
	}
	return alive
}

func (c *cluster) waitMembers(d time.Duration, nodes ...*benchNode) time.Duration {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	// Each check reads every member's status on a node, so checking all of 500
	// nodes every 10 ms was a tenth of the process's CPU while the cluster formed
	// (profile of the 500-agent run): poll less often in large clusters, and start
	// where the last check failed.
	every := 10 * time.Millisecond
	if len(nodes) > largeCluster {
		every = 200 * time.Millisecond
	}
	start, from := time.Now(), 0
	for {
		ok := true
		for k := range nodes {
			i := (from + k) % len(nodes)
			if aliveCount(nodes[i]) < len(nodes) {
				ok, from = false, i
				break
			}
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			c.t.Fatalf("timed out after %v waiting for %d members alive everywhere: %s", d, len(nodes), memberStates(nodes))
		}
		time.Sleep(every)
	}
}

// memberStates summarizes what the nodes that do not see everyone alive see instead,
// and what memberlist itself counts, so a membership timeout says why.
func memberStates(nodes []*benchNode) string {
	var b strings.Builder
	short := 0
	total := map[string]int{}
	for _, n := range nodes {
		seen := map[string]int{}
		for _, m := range n.Gossip().Members() {
			seen[m.Status]++
		}
		if seen[catalog.StatusAlive] >= len(nodes) {
			continue
		}
		short++
		for k, v := range seen {
			total[k] += v
		}
		if short <= 5 {
			fmt.Fprintf(&b, "%s sees %v (memberlist lists %d); ", n.Name(), seen, len(n.Gossip().Members()))
		}
	}
	fmt.Fprintf(&b, "%d of %d nodes short; statuses summed over them: %v", short, len(nodes), total)
	return b.String()
}

func root(n *benchNode) uint64 {
	r, _ := n.Catalog().Digest()
	return r
}

func converged(nodes []*benchNode) bool {
	r0 := root(nodes[0])
	for _, n := range nodes[1:] {
		if root(n) != r0 {
			return false
		}
	}
	return true
}

func (c *cluster) waitConverged(d time.Duration, nodes ...*benchNode) time.Duration {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	return eventually(c.t, d, "catalog convergence", func() bool { return converged(nodes) })
}

func (c *cluster) traffic() []Traffic {
	out := make([]Traffic, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.tr.Traffic()
	}
	return out
}

// counter sums a Prometheus counter family on n's registry, optionally only the
// series with label=value.
func counter(n *benchNode, name, label, value string) float64 {
	if label == "" {
		value = ""
	}
	return counters(n, name, label)[value]
}

// counters sums a counter family on n's registry by the value of label, in one
// gather.
func counters(n *benchNode, name, label string) map[string]float64 {
	out := map[string]float64{}
	mfs, err := n.reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					v = lp.GetValue()
				}
			}
			out[v] += m.GetCounter().GetValue()
		}
	}
	return out
}

// setupApp creates org "bench" and app "bench" on the first node and waits until
// every node has the app.
func (c *cluster) setupApp(ctx context.Context, d time.Duration) {
	c.t.Helper()
	if _, err := c.nodes[0].Orgs.Create(ctx, "bench"); err != nil {
		c.t.Fatalf("create org: %v", err)
	}
	if _, err := c.nodes[0].Apps.Create(ctx, mesh.AppSpec{Name: "bench", Org: "bench"}); err != nil {
		c.t.Fatalf("create app: %v", err)
	}
	eventually(c.t, d, "app on every node", func() bool {
		for _, n := range c.nodes {
			if n.Catalog().Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey("bench", "bench")}) == nil {
				return false
			}
		}
		return true
	})
}

// startNodeIn starts a lone agent (no join) on an existing data dir.
func (c *cluster) startNodeIn(name, dir string) *benchNode {
	c.t.Helper()
	ip := nextIP()
	tr, err := NewCountingTransport(ip, false)
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := mesh.Start(mesh.Config{Name: name, DataDir: dir, GossipAddr: fmt.Sprintf("%s:%d", ip, tr.Port()), GossipKey: benchKey, Transport: tr})
	if err != nil {
		tr.Shutdown()
		c.t.Fatalf("start %s: %v", name, err)
	}
	bn := &benchNode{Node: n, tr: tr, ip: ip, dir: dir, addr: fmt.Sprintf("%s:%d", ip, tr.Port())}
	c.nodes = append(c.nodes, bn)
	return bn
}

// DOGWOOD_BENCH_PPROF=127.0.0.1:6060 serves net/http/pprof while a benchmark runs,
// to profile a large run in the middle (membership forming, creates).
func init() {
	if addr := os.Getenv("DOGWOOD_BENCH_PPROF"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
