package meshbench

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// arrivals records, per node, when each machine of app "bench" first showed up in its
// catalog. One goroutine per node waits on Catalog().Watch() (no polling) and stamps
// new machines when woken.
type arrivals struct {
	mu   sync.Mutex
	seen []map[string]time.Time // per node
	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchArrivals(nodes []*benchNode) *arrivals {
	a := &arrivals{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for i, n := range nodes {
		a.seen = append(a.seen, map[string]time.Time{})
		ch, stop := n.Catalog().Watch()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer stop()
			// The goroutine's own view of what it stamped, so finding new machines
			// needs no lock shared with 499 others: snapshots share an unchanged
			// app's view, and a view seen already has nothing new.
			var last *catalog.AppView
			known := map[string]bool{}
			for {
				select {
				case <-ch:
				case <-a.stop:
					return
				}
				now := time.Now()
				app := n.Catalog().Latest().Apps[catalog.AppKey("bench", "bench")]
				if app == nil || app == last {
					continue
				}
				last = app
				var fresh []string
				for _, m := range app.Machines {
					if !known[m.ID] {
						known[m.ID] = true
						fresh = append(fresh, m.ID)
					}
				}
				if len(fresh) == 0 {
					continue
				}
				a.mu.Lock()
				for _, id := range fresh {
					a.seen[i][id] = now
				}
				a.mu.Unlock()
				select {
				case a.wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	return a
}

func (a *arrivals) close() {
	close(a.stop)
	a.wg.Wait()
}

// all returns every node's arrival time for id, or ok=false if some node lacks it.
func (a *arrivals) all(id string) ([]time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Time, len(a.seen))
	for i, s := range a.seen {
		t, ok := s[id]
		if !ok {
			return nil, false
		}
		out[i] = t
	}
	return out, true
}

type propResult struct {
	agents, creates int
	// everyHost: Machines.Create return -> the last other host has it (0 if all had it
	// before the call returned). fromCall: the same measured from the call's start.
	everyHost, fromCall []time.Duration
	// perHost: return -> arrival, one sample per (create, other host).
	perHost   []time.Duration
	createDur []time.Duration
	early     int // (create, host) pairs where the machine arrived before the call returned
	timeouts  int
	bytesOut  int64
	wall      time.Duration
	setup     time.Duration
	// started: all agents started; members: then until every agent saw every
	// other alive (membership convergence).
	started, members time.Duration
	// treeBytes: broadcast-tree bytes all hosts sent during the creates, by kind.
	treeBytes map[string]float64
	// cpu is the CPU time the whole process (every agent) used during the creates:
	// unlike latency, it does not depend on how busy the rest of the machine is.
	cpu time.Duration
	// load is the machine's load average (1, 5, 15 min) when the creates ended.
	load string
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the machine's load average as /proc/loadavg gives it ("" if unknown):
// the latencies of agents sharing the CPU with other work mean little without it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// profileCreates starts a CPU profile of the creates alone (not the cluster's start)
// when DOGWOOD_BENCH_CPUPROFILE names a file; it returns the function that stops it.
func profileCreates(t testing.TB) func() {
	path := os.Getenv("DOGWOOD_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		t.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

var treeKinds = []string{"gossip", "ihave", "graft", "prune", "join"}

func (c *cluster) treeBytes() map[string]float64 {
	out := map[string]float64{}
	for _, n := range c.nodes {
		byKind := counters(n, "dogwood_gossip_tree_bytes_sent_total", "kind")
		for _, k := range treeKinds {
			out[k] += byKind[k]
		}
	}
	return out
}

// runPropagation makes creates machines, round-robin over the hosts, one at a time,
// and waits for each to be on every host (up to perCreate) before the next.
func runPropagation(t *testing.T, agents, creates int, perCreate time.Duration, waitConverged bool) propResult {
	t0 := time.Now()
	ctx := context.Background()
	c := newCluster(t, agents, false)
	started := time.Since(t0)
	members := c.waitMembers(30*time.Second + time.Duration(agents)*time.Second)
	if waitConverged {
		c.waitConverged(60 * time.Second)
	}
	c.setupApp(ctx, 30*time.Second)
	res := propResult{agents: agents, creates: creates, setup: time.Since(t0), started: started, members: members}
	a := watchArrivals(c.nodes)
	defer a.close()
	tr0 := c.traffic()
	tb0 := c.treeBytes()
	stopProfile := profileCreates(t)
	cpu0 := processCPU()
	start := time.Now()
	for k := 0; k < creates; k++ {
		hi := k % agents
		h := c.nodes[hi]
		callStart := time.Now()
		m, err := h.Machines.Create(ctx, mesh.MachineSpec{App: "bench", Metadata: map[string]string{"k": fmt.Sprint(k)}})
		ret := time.Now()
		if err != nil {
			t.Fatalf("create %d on %s: %v", k, h.Name(), err)
		}
		res.createDur = append(res.createDur, ret.Sub(callStart))
		deadline := time.NewTimer(perCreate)
		var times []time.Time
		for {
			var ok bool
			if times, ok = a.all(m.ID); ok {
				break
			}
			select {
			case <-a.wake:
				continue
			case <-deadline.C:
			}
			break
		}
		deadline.Stop()
		if times == nil {
			res.timeouts++
			t.Errorf("create %d (%s on %s) not on every host within %v", k, m.ID, h.Name(), perCreate)
			continue
		}
		var last time.Time
		for i, at := range times {
			if i == hi {
				continue
			}
			d := at.Sub(ret)
			if d <= 0 {
				res.early++
				d = 0
			}
			res.perHost = append(res.perHost, d)
			if at.After(last) {
				last = at
			}
		}
		res.everyHost = append(res.everyHost, max(0, last.Sub(ret)))
		res.fromCall = append(res.fromCall, max(0, last.Sub(callStart)))
	}
	res.wall = time.Since(start)
	res.cpu = processCPU() - cpu0
	res.load = loadAvg()
	stopProfile()
	for i, tr := range c.traffic() {
		res.bytesOut += tr.Sub(tr0[i]).BytesOut()
	}
	res.treeBytes = c.treeBytes()
	for k, v := range tb0 {
		res.treeBytes[k] -= v
	}
	return res
}

func (r propResult) print() {
	label := fmt.Sprintf("propagation agents=%d creates=%d", r.agents, r.creates)
	Line("%s every-host p50=%s p99=%s max=%s (Machines.Create return -> last other host's catalog has it)",
		label, Ms(Percentile(r.everyHost, 50)), Ms(Percentile(r.everyHost, 99)), Ms(Percentile(r.everyHost, 100)))
	Line("%s from-call-start p50=%s p99=%s max=%s", label,
		Ms(Percentile(r.fromCall, 50)), Ms(Percentile(r.fromCall, 99)), Ms(Percentile(r.fromCall, 100)))
	Line("%s per-host p50=%s p99=%s (%d samples, %d arrived before Machines.Create returned)", label,
		Ms(Percentile(r.perHost, 50)), Ms(Percentile(r.perHost, 99)), len(r.perHost), r.early)
	Line("%s CreateMachine p50=%s p99=%s; timeouts=%d; wire bytes out per create (all hosts)=%s; creates took %v; setup %v",
		label, Ms(Percentile(r.createDur, 50)), Ms(Percentile(r.createDur, 99)), r.timeouts,
		Bytes(float64(r.bytesOut)/float64(max(1, r.creates))), r.wall.Round(time.Millisecond), r.setup.Round(time.Millisecond))
	var kinds []string
	for _, k := range treeKinds {
		kinds = append(kinds, fmt.Sprintf("%s %s", k, Bytes(r.treeBytes[k]/float64(max(1, r.creates)))))
	}
	Line("%s tree bytes per create (all hosts, sealed): %s", label, strings.Join(kinds, ", "))
	Line("%s CPU (whole process, all agents) per create=%s (%.2f cores busy over the creates); machine load average %s",
		label, Ms(r.cpu/time.Duration(max(1, r.creates))), r.cpu.Seconds()/max(r.wall.Seconds(), 1e-9), r.load)
	Line("%s membership: all agents started in %v, then every agent saw all %d alive after %v", label,
		r.started.Round(time.Millisecond), r.agents, r.members.Round(time.Millisecond))
}

// TestBenchPropagation: SPEC §3 speed; issue 24's target is every-host p99 <= 300 ms
// at 500 agents over 200 creates, reported with the machine's load average (the
// agents share its CPU with whatever else runs).
func TestBenchPropagation(t *testing.T) {
	benchOn(t)
	creates := envInts("DOGWOOD_BENCH_CREATES", []int{200})[0]
	Section("Propagation", fmt.Sprintf("Agents in one process, real memberlist on loopback (own 127.0.x.y each), gossip key set, "+
		"mesh.Config defaults (AEInterval 1s, memberlist DefaultLANConfig). %d CreateMachine calls round-robin over the hosts, "+
		"one at a time; arrival stamped by a Catalog().Watch() goroutine per host. Target: every-host p99 <= 300ms at 500 agents, with the load average next to it.", creates))
	// Every agent of a fleet is a process with its own small heap and collector; here
	// hundreds share one heap of gigabytes, and one collection's long mark phase
	// slows every agent at once (mutator assists), which separate processes never
	// do. At 500 agents that coupling was the tail: every-host p99 328 ms with the
	// default GOGC against 238 ms at 400, at 1.9 cores busy either way. So the bench
	// collects less often unless GOGC is set; the line below says which it ran with.
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "400 (bench default)"
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	Line("propagation GOGC=%s", gogc)
	for _, agents := range envInts("DOGWOOD_BENCH_AGENTS", []int{5, 50, 500}) {
		t.Run(fmt.Sprintf("agents=%d", agents), func(t *testing.T) {
			r := runPropagation(t, agents, creates, 5*time.Second, true)
			r.print()
			p99 := Percentile(r.everyHost, 99)
			verdict := "MET"
			if p99 > 300*time.Millisecond || r.timeouts > 0 {
				verdict = "MISSED"
			}
			Line("propagation agents=%d target every-host p99<=300ms: %s (p99=%s, %.2fx the target; load average %s)",
				agents, verdict, Ms(p99), float64(p99)/float64(300*time.Millisecond), r.load)
		})
	}
}

// TestPropagationRegression runs in `go test ./...`: five hosts, twenty creates spread
// over them, each visible on every host within 2 s. A correctness bound, not the
// speed target.
func TestPropagationRegression(t *testing.T) {
	r := runPropagation(t, 5, 20, 2*time.Second, false)
	if r.timeouts > 0 {
		t.Fatalf("%d of %d creates were not on every host within 2s", r.timeouts, r.creates)
	}
	t.Logf("every-host p50=%s max=%s", Ms(Percentile(r.everyHost, 50)), Ms(Percentile(r.everyHost, 100)))
}
