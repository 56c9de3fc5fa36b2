package chaos

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

type machine struct {
	ID      string `json:"id"`
	App     string `json:"app"`
	Org     string `json:"org"`
	Network string `json:"network"`
	Host    string `json:"host"`
	Address string `json:"address"`
	State   string `json:"state"`
	Netns   string `json:"netns"`
}

type member struct {
	Name   string `json:"name"`
	HostID uint32 `json:"host_id"`
	Status string `json:"status"`
}

// acked is an acknowledged machine create and what happened to it since.
type acked struct {
	machine
	epoch     int    // the host's incarnation when the create was acknowledged
	state     string // last acknowledged state, "" when a later action failed (unknown)
	destroyed bool   // a destroy was acknowledged
	maybeGone bool   // a destroy failed: it may or may not have happened
	ns        string
}

// model is what the clients were told: the check compares the cluster with it.
type model struct {
	mu       sync.Mutex
	epoch    map[string]int // host name -> incarnation (re-image and removal bump it)
	machines []*acked
	apps     map[string]bool // "org/app" acknowledged
	peers    map[string]int  // "org/name" acknowledged -> gateway epoch
}

// TestChaos runs the workload under the nemesis and checks the invariants. CHAOS_SEED
// reproduces a run; CHAOS_ROUNDS sets the nemesis rounds (default 3).
func TestChaos(t *testing.T) {
	requireEnv(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
	}
	rounds := 3
	if s := os.Getenv("CHAOS_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	t.Logf("chaos: seed %d, %d rounds (reproduce with CHAOS_SEED=%d CHAOS_ROUNDS=%d)", seed, rounds, seed, rounds)
	defer func() {
		if t.Failed() {
			t.Logf("chaos FAILED: seed %d, %d rounds", seed, rounds)
		}
	}()
	rng := rand.New(rand.NewSource(seed))
	w := newWorld(t)
	for i := 1; i <= 5; i++ {
		w.addHost(i, i == 1)
	}
	m := &model{epoch: map[string]int{}, apps: map[string]bool{}, peers: map[string]int{}}
	h1 := w.h[0]
	for _, org := range []string{"acme", "globex"} {
		if out, err := w.cli(h1, "orgs", "create", org); err != nil {
			t.Fatalf("orgs create: %v %s", err, out)
		}
		// The same app name in two orgs: names are unique per org.
		if out, err := w.cli(h1, "apps", "create", "web", "--org", org); err != nil {
			t.Fatalf("apps create: %v %s", err, out)
		}
		m.apps[org+"/web"] = true
	}

	// The workload: one client per host, each with its own seeded stream.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, h := range w.h {
		crng := rand.New(rand.NewSource(seed + int64(i) + 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(h, crng, m, stop)
		}()
	}

	reimageAt, removeAt := 1, 2
	if rounds >= 10 {
		reimageAt, removeAt = rounds/4, rounds/2
	}
	for r := 0; r < rounds; r++ {
		switch {
		case r == reimageAt:
			w.reimage(w.h[4], m, rng.Intn(2) == 0)
		case r == removeAt:
			w.removeAndRestart(w.h[3], m, rng.Intn(2) == 0)
		default:
			w.nemesis(rng, m)
		}
	}
	close(stop)
	wg.Wait()
	w.heal()
	for _, h := range w.h {
		if h.agent.exited() {
			w.logf("final: restart %s", h.name)
			if err := w.start(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.check(m)
}

// client runs operations against one agent until stop.
func (w *world) client(h *host, rng *rand.Rand, m *model, stop chan struct{}) {
	n := 0
	mine := []*acked{}
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(100+rng.Intn(300)) * time.Millisecond):
		}
		n++
		org := []string{"acme", "globex"}[rng.Intn(2)]
		switch op := rng.Intn(100); {
		case op < 35 && len(mine) < 6:
			ns, err := w.tryNetns(fmt.Sprintf("m%d%03d", h.idx, n))
			if err != nil {
				w.logf("%s: %v", h.name, err)
				continue
			}
			m.mu.Lock()
			app := "web"
			var own []string
			for k := range m.apps {
				if strings.HasPrefix(k, org+"/") {
					own = append(own, strings.TrimPrefix(k, org+"/"))
				}
			}
			sort.Strings(own)
			if len(own) > 0 {
				app = own[rng.Intn(len(own))]
			}
			m.mu.Unlock()
			out, err := w.cli(h, "machines", "create", "--app", app, "--org", org, "--netns", ns, "--json")
			if err != nil {
				w.logf("%s: machines create %s/%s: FAILED %v %s", h.name, org, app, err, firstLine(out))
				continue
			}
			mc, err := decode[machine](out)
			if err != nil {
				w.logf("%s: machines create: bad output %q", h.name, out)
				continue
			}
			m.mu.Lock()
			a := &acked{machine: mc, epoch: m.epoch[h.name], state: mc.State, ns: ns}
			m.machines = append(m.machines, a)
			m.mu.Unlock()
			mine = append(mine, a)
			w.logf("%s: machines create %s/%s -> %s %s", h.name, org, app, mc.ID, mc.Address)
		case op < 55 && len(mine) > 0:
			a := mine[rng.Intn(len(mine))]
			action := []string{"stop", "start"}[rng.Intn(2)]
			out, err := w.cli(h, "machines", action, a.ID)
			m.mu.Lock()
			if err != nil {
				a.state = ""
			} else {
				a.state = map[string]string{"stop": "stopped", "start": "started"}[action]
			}
			m.mu.Unlock()
			w.logf("%s: machines %s %s: err=%v %s", h.name, action, a.ID, err, firstLine(out))
		case op < 65 && len(mine) > 0:
			i := rng.Intn(len(mine))
			a := mine[i]
			out, err := w.cli(h, "machines", "destroy", a.ID)
			m.mu.Lock()
			if err != nil {
				a.maybeGone = true
			} else {
				a.destroyed = true
			}
			m.mu.Unlock()
			mine = append(mine[:i], mine[i+1:]...)
			w.logf("%s: machines destroy %s: err=%v %s", h.name, a.ID, err, firstLine(out))
		case op < 72:
			app := fmt.Sprintf("a%d%d", h.idx, n)
			if rng.Intn(2) == 0 {
				// A name other clients pick too: concurrent creates (across a
				// partition, both acknowledged) that must converge to one app.
				app, org = fmt.Sprintf("s%d", n/8), "acme"
			}
			out, err := w.cli(h, "apps", "create", app, "--org", org)
			if err == nil {
				m.mu.Lock()
				m.apps[org+"/"+app] = true
				m.mu.Unlock()
			}
			w.logf("%s: apps create %s/%s: err=%v %s", h.name, org, app, err, firstLine(out))
		case op < 78:
			name := fmt.Sprintf("p%d%d", h.idx, n)
			file := filepath.Join(w.dir, name+".conf")
			out, err := w.cli(h, "wireguard", "create", org, "", name, file)
			if err == nil {
				m.mu.Lock()
				m.peers[org+"/"+name] = m.epoch["h1"]
				m.mu.Unlock()
			}
			w.logf("%s: wireguard create %s/%s: err=%v %s", h.name, org, name, err, firstLine(out))
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// nemesis runs one round of partitions or kills.
func (w *world) nemesis(rng *rand.Rand, m *model) {
	switch rng.Intn(7) {
	case 6:
		w.logf("nemesis: kill -9 every agent, start them all again")
		for _, h := range w.h {
			h.agent.signal(syscall.SIGKILL, time.Second)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(w.h))
		for i, h := range w.h {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = w.start(h) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				w.t.Fatalf("restart all: %v", err)
			}
		}
		w.logf("nemesis: all restarted")
	case 0, 1, 2:
		perm := rng.Perm(5)
		side := []*host{w.h[perm[0]]}
		if rng.Intn(2) == 0 {
			side = append(side, w.h[perm[1]])
		}
		d := time.Duration(3000+rng.Intn(5000)) * time.Millisecond
		names := []string{}
		for _, h := range side {
			names = append(names, h.name)
		}
		w.logf("nemesis: partition %v from the rest for %v", names, d)
		w.partition(side)
		time.Sleep(d)
		w.heal()
		w.logf("nemesis: healed")
	default:
		h := w.h[rng.Intn(5)]
		w.logf("nemesis: kill -9 %s", h.name)
		h.agent.signal(syscall.SIGKILL, time.Second)
		time.Sleep(time.Duration(500+rng.Intn(2500)) * time.Millisecond)
		if err := w.start(h); err != nil {
			w.t.Fatalf("restart %s after kill -9: %v", h.name, err)
		}
		w.logf("nemesis: %s restarted", h.name)
	}
	time.Sleep(time.Duration(500+rng.Intn(1500)) * time.Millisecond)
}

// reimage kills h and starts the same name on an empty data dir.
// When isolated, the new incarnation starts cut off from every other host (it
// cannot ask anyone about its name) and meets the old record only after the heal.
func (w *world) reimage(h *host, m *model, isolated bool) {
	w.logf("nemesis: re-image %s (kill -9, wipe data dir, start; isolated=%v)", h.name, isolated)
	h.agent.signal(syscall.SIGKILL, time.Second)
	m.mu.Lock()
	m.epoch[h.name]++
	m.mu.Unlock()
	os.RemoveAll(h.dataDir)
	if isolated {
		w.partition([]*host{h})
	}
	if err := w.start(h); err != nil {
		w.t.Fatalf("re-imaged %s: %v", h.name, err)
	}
	if isolated {
		time.Sleep(3 * time.Second)
		w.heal()
		w.logf("nemesis: healed the re-imaged %s", h.name)
	}
	out, err := w.cli(h, "status", "--json")
	st, derr := decode[struct {
		HostID    uint32 `json:"host_id"`
		PublicKey string `json:"public_key"`
	}](out)
	if err != nil || derr != nil {
		w.t.Fatalf("status of re-imaged %s: %v %v %s", h.name, err, derr, out)
	}
	// Within 10 s every host has the new incarnation: id and WireGuard key.
	start := time.Now()
	err = e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		for _, o := range w.h {
			out, err := w.cli(o, "members", "--json")
			if err != nil {
				return err
			}
			ms, _ := decode[[]struct {
				Name      string `json:"name"`
				HostID    uint32 `json:"host_id"`
				PublicKey string `json:"public_key"`
			}](out)
			ok := false
			for _, mm := range ms {
				ok = ok || (mm.Name == h.name && mm.HostID == st.HostID && mm.PublicKey == st.PublicKey)
			}
			if !ok {
				return fmt.Errorf("%s does not show the new incarnation of %s: %s", o.name, h.name, out)
			}
		}
		return nil
	})
	if err != nil {
		w.t.Fatalf("re-image not superseded within 10 s: %v", err)
	}
	w.logf("nemesis: %s re-imaged as %08x; every host switched after %v", h.name, st.HostID, time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)
}

// removeAndRestart kills h, removes it with `members remove` once it is failed,
// starts it again on its data dir (it must refuse to run), then wipes it and starts
// it as a new host.
// When isolated, the removed host starts cut off (nobody can tell it it was removed)
// and must stop once the heal brings the news.
func (w *world) removeAndRestart(h *host, m *model, isolated bool) {
	w.logf("nemesis: kill -9 %s, then members remove", h.name)
	h.agent.signal(syscall.SIGKILL, time.Second)
	m.mu.Lock()
	m.epoch[h.name]++
	m.mu.Unlock()
	other := w.h[0]
	err := e2eproc.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		out, err := w.cli(other, "members", "remove", h.name)
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	if err != nil {
		w.t.Fatalf("members remove %s: %v", h.name, err)
	}
	w.logf("nemesis: %s removed; starting it on its old data dir (isolated=%v)", h.name, isolated)
	if isolated {
		w.partition([]*host{h})
	}
	p, err := startProc(h.log, e2eproc.InNS(h.ns, w.args(h)...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	if isolated {
		time.Sleep(5 * time.Second)
		w.heal()
		w.logf("nemesis: healed the removed %s", h.name)
	}
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.signal(syscall.SIGKILL, time.Second)
		w.t.Fatalf("removed host %s kept running on its data dir (half admitted)", h.name)
	}
	code := -1
	if p.cmd.ProcessState != nil {
		code = p.cmd.ProcessState.ExitCode()
	}
	if code != 1 || !strings.Contains(tail(h.log, 4000), "removed from the cluster") {
		w.t.Fatalf("removed host %s: exit %d, want 1 with a message saying it was removed:\n%s", h.name, code, tail(h.log, 2000))
	}
	w.logf("nemesis: %s refused to run (exit 1); wiping it and starting it as a new host", h.name)
	os.RemoveAll(h.dataDir)
	if err := w.start(h); err != nil {
		w.t.Fatalf("fresh %s: %v", h.name, err)
	}
	time.Sleep(2 * time.Second)
}
