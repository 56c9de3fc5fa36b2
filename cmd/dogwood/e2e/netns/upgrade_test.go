package netns

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// Upgrades: a fleet on an earlier release is replaced host by host with this build
// while a workload runs, as an operator would (SIGTERM, new binary, same data dir).
// The earlier releases are built from this repository's history by commit (tags
// need not exist in a clone), never from anything fetched. `make upgrade-test` runs
// them with the 20 s spacing of the issue (DOGWOOD_UPGRADE_SPACING), `make test`
// with a short one.

const (
	releaseV010 = "b9503e2" // v0.1.0: before the replay seal
	releaseV020 = "4ecf7e8" // v0.2.0: the release before this one
)

var (
	releaseMu   sync.Mutex
	releaseBins = map[string]string{}
)

// releaseBin builds dogwood as it was at commit, once per test binary.
func releaseBin(t *testing.T, commit string) string {
	t.Helper()
	dogwoodBin(t) // sets baseDir
	releaseMu.Lock()
	defer releaseMu.Unlock()
	if b, ok := releaseBins[commit]; ok {
		return b
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err == nil {
		err = exec.Command("git", "-C", strings.TrimSpace(string(root)), "cat-file", "-e", commit+"^{commit}").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("commit %s is not in this clone (fetch full history): %v", commit, err)
		}
		t.Skipf("skipping: commit %s is not in this clone (a shallow clone?): %v", commit, err)
	}
	t0 := time.Now()
	src := filepath.Join(baseDir, "src-"+commit)
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	arch := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", strings.TrimSpace(string(root)), commit, src))
	if out, err := arch.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(baseDir, "dogwood-"+commit)
	// -trimpath: the source dir differs per run; without it no compile is cached.
	// The agent tag makes one binary that runs every command itself: releases
	// before the split into dogwood and dogwood-agent ignore it (they are one
	// binary anyway), later ones link the agent's side in.
	build := exec.Command("go", "build", "-trimpath", "-tags", "agent", "-o", bin, "./cmd/dogwood")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", commit, err, out)
	}
	os.RemoveAll(src)
	t.Logf("built dogwood at %s in %.1fs", commit, time.Since(t0).Seconds())
	releaseBins[commit] = bin
	return bin
}

// upgradeSpacing is the pause between two hosts' replacements.
func upgradeSpacing() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("DOGWOOD_UPGRADE_SPACING")); err == nil && d > 0 {
		return d
	}
	return 4 * time.Second
}

// windows are the restarts of each host: from the SIGTERM until it is back in
// service (its agent answers, it and every other host see every member alive, and
// its DNS answers every machine), plus a second for a probe already under way.
type windows struct {
	mu    sync.Mutex
	spans map[string][][2]time.Time
}

const restartGrace = time.Second

func (w *windows) begin(h string) {
	w.mu.Lock()
	w.spans[h] = append(w.spans[h], [2]time.Time{time.Now(), time.Now().Add(time.Hour)})
	w.mu.Unlock()
}

func (w *windows) end(h string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.spans[h]
	s[len(s)-1][1] = time.Now().Add(restartGrace)
	return time.Since(s[len(s)-1][0])
}

// backInService waits until a restarted host is part of its cluster again: every
// host sees every member alive, and DNS on the host answers every machine.
func backInService(w *world, h *host, hosts []*host, stable []*machine, names []string) {
	w.t.Helper()
	w.waitMembers(hosts, names...)
	var want []string
	var own *machine
	for _, m := range stable {
		want = append(want, m.Address)
		if m.Host == h.name {
			own = m
		}
	}
	sort.Strings(want)
	if err := e2eproc.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		got, _, err := digAAAA(own.ns, "fdaa::3", "web.internal")
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("web.internal on %s after its restart: %v %v", h.name, got, err)
		}
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
}

// in reports whether host h was restarting at any moment of [from, to].
func (w *windows) in(h string, from, to time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.spans[h] {
		if !to.Before(s[0]) && !from.After(s[1]) {
			return true
		}
	}
	return false
}

// tally counts one host's outcomes: all, failed during a restart, failed otherwise.
type tally struct{ all, duringRestart, outside int }

type upgradeStats struct {
	mu     sync.Mutex
	writes map[string]*tally
	dns    map[string]*tally
	pings  map[string]*tally
	errs   []string
}

func newUpgradeStats() *upgradeStats {
	return &upgradeStats{writes: map[string]*tally{}, dns: map[string]*tally{}, pings: map[string]*tally{}}
}

func (s *upgradeStats) note(m map[string]*tally, host string, failed, restarting bool, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := m[host]
	if t == nil {
		t = &tally{}
		m[host] = t
	}
	t.all++
	switch {
	case failed && restarting:
		t.duringRestart++
	case failed:
		t.outside++
		if len(s.errs) < 40 {
			s.errs = append(s.errs, time.Now().Format("15:04:05.000")+" "+host+": "+what)
		}
	}
}

func (s *upgradeStats) report(t *testing.T, hosts []*host) (outside int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("%-4s %28s %28s %28s", "HOST", "WRITES all/restart/outside", "DNS all/restart/outside", "PINGS all/restart/outside")
	for _, h := range hosts {
		f := func(m map[string]*tally) string {
			x := m[h.name]
			if x == nil {
				x = &tally{}
			}
			outside += x.outside
			return fmt.Sprintf("%d/%d/%d", x.all, x.duringRestart, x.outside)
		}
		t.Logf("%-4s %28s %28s %28s", h.name, f(s.writes), f(s.dns), f(s.pings))
	}
	for _, e := range s.errs {
		t.Logf("outside a restart: %s", e)
	}
	return outside
}

// workload is the acknowledged state the writes built, to find on every host.
type workload struct {
	mu        sync.Mutex
	machines  map[string]string // id → started|stopped, for acknowledged ones
	owner     map[string]string // id → host
	destroyed map[string]bool
	txt       map[string]string // name → value
	alias     string            // the ALIAS "cur"'s target
}

type listedMachine struct {
	ID      string `json:"id"`
	App     string `json:"app"`
	State   string `json:"state"`
	Host    string `json:"host"`
	Address string `json:"address"`
}

type listedRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// TestUpgradeRolling: 5 hosts on v0.2.0 with orgs, apps, machines, a peer and DNS
// records are replaced one at a time while creates, stops, starts, destroys and
// record switches run on every host, DNS is asked on every host and machines ping
// across hosts. Nothing acknowledged is lost, nothing fails outside a host's own
// restart, and one host can go back to v0.2.0 on its data dir.
func TestUpgradeRolling(t *testing.T) {
	requireEnv(t)
	old := releaseBin(t, releaseV020)
	step := stepLogger(t)
	w := newWorld(t, "u")
	var hosts []*host
	for i := 1; i <= 5; i++ {
		o := hostOpts{region: []string{"ord", "ams", "fra", "sin", "syd"}[i-1], bin: old}
		if i == 1 {
			o.gateway, o.publicEndpoint = true, "198.18.0.1:51820"
		}
		hosts = append(hosts, w.addHost(i, o))
	}
	names := []string{"h1", "h2", "h3", "h4", "h5"}
	w.waitMembers(hosts, names...)
	step("5 hosts on v0.2.0")

	w.cli(hosts[0], "orgs", "create", "acme")
	w.cli(hosts[1], "orgs", "create", "globex")
	w.cli(hosts[0], "apps", "create", "web", "--org", "acme")
	w.cli(hosts[2], "apps", "create", "work", "--org", "acme")
	var stable []*machine
	for i, h := range hosts {
		stable = append(stable, w.createMachine(h, "web", fmt.Sprintf("m%d", i+1)))
	}
	w.cli(hosts[3], "dns", "add", "acme", "www", "CNAME", "web.internal")
	w.cli(hosts[0], "wireguard", "create", "acme", "ord", "laptop", filepath.Join(w.dir, "laptop.conf"))
	var webAddrs []string
	for _, m := range stable {
		webAddrs = append(webAddrs, m.Address)
	}
	sort.Strings(webAddrs)
	for _, m := range stable {
		if err := e2eproc.Eventually(30*time.Second, 200*time.Millisecond, func() error {
			got, _, err := digAAAA(m.ns, "fdaa::3", "web.internal")
			if err != nil || strings.Join(got, " ") != strings.Join(webAddrs, " ") {
				return fmt.Errorf("web.internal from %s: %v %v", m.ns, got, err)
			}
			return pingOK(m.ns, "", stable[(indexOf(stable, m)+1)%len(stable)].Address)
		}); err != nil {
			t.Fatal(err)
		}
	}
	step("orgs, apps, 5 machines, a peer and DNS records on v0.2.0; DNS and pings answer")

	win := &windows{spans: map[string][][2]time.Time{}}
	stats := newUpgradeStats()
	wl := &workload{machines: map[string]string{}, owner: map[string]string{}, destroyed: map[string]bool{}, txt: map[string]string{}}
	seed := time.Now().UnixNano()
	t.Logf("workload seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	stop := make(chan struct{})
	var bg sync.WaitGroup
	loop(&bg, stop, 150*time.Millisecond, func(i int) { upgradeWrite(w, hosts, wl, win, stats, rng, i) })
	loop(&bg, stop, 500*time.Millisecond, func(int) { // DNS on every host, from its machine
		parallel(len(stable), func(i int) error {
			m := stable[i]
			t0 := time.Now()
			got, _, err := digAAAA(m.ns, "fdaa::3", "web.internal")
			t1 := time.Now()
			missing := missingAddrs(stable, got, func(h string) bool { return win.in(h, t0.Add(-2*time.Second), t1) })
			failed := err != nil || len(missing) > 0
			stats.note(stats.dns, m.Host, failed, win.in(m.Host, t0, t1), fmt.Sprintf("web.internal: %v missing %v", err, missing))
			return nil
		})
	})
	loop(&bg, stop, 500*time.Millisecond, func(int) { // WireGuard between machines of neighbouring hosts
		parallel(len(stable), func(i int) error {
			a, b := stable[i], stable[(i+1)%len(stable)]
			t0 := time.Now()
			err := pingRetry(a.ns, b.Address, 2)
			t1 := time.Now()
			restarting := win.in(a.Host, t0, t1) || win.in(b.Host, t0, t1)
			stats.note(stats.pings, a.Host, err != nil, restarting, fmt.Sprintf("ping %s→%s: %v", a.Host, b.Host, err))
			return nil
		})
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		bg.Wait()
	}()

	spacing := upgradeSpacing()
	for _, h := range hosts {
		time.Sleep(spacing)
		win.begin(h.name)
		if err := h.agent.stop(15 * time.Second); err != nil {
			t.Logf("%s (v0.2.0) stopped: %v", h.name, err)
		}
		h.bin = ""
		h.start(h.args)
		backInService(w, h, hosts, stable, names)
		step(fmt.Sprintf("%s runs this build (restart: %.1fs from SIGTERM until back in service)", h.name, win.end(h.name).Seconds()))
		var ms []struct {
			Name           string `json:"name"`
			Version        string `json:"version"`
			VersionProblem string `json:"version_problem"`
		}
		w.cliJSON(h, &ms, "members")
		for _, m := range ms {
			if m.VersionProblem != "" {
				t.Errorf("%s says it cannot talk to %s: %s", h.name, m.Name, m.VersionProblem)
			}
		}
	}
	time.Sleep(spacing)
	close(stop)
	bg.Wait()
	step("every host upgraded; workload stopped")

	// Everything acknowledged, on every host, and every catalog the same.
	wantWork := map[string]string{}
	wl.mu.Lock()
	for id, st := range wl.machines {
		wantWork[id] = st
	}
	wantTXT := map[string]string{}
	for k, v := range wl.txt {
		wantTXT[k] = v
	}
	alias := wl.alias
	destroyed := len(wl.destroyed)
	wl.mu.Unlock()
	var lastDiff string
	if err := e2eproc.Eventually(60*time.Second, 500*time.Millisecond, func() error {
		var first string
		for _, h := range hosts {
			var ms []listedMachine
			var rs []listedRecord
			out, err := w.try(h, "machines", "list", "--json")
			if err != nil || json.Unmarshal([]byte(out), &ms) != nil {
				return fmt.Errorf("%s machines list: %v %s", h.name, err, out)
			}
			out, err = w.try(h, "dns", "list", "acme", "--json")
			if err != nil || json.Unmarshal([]byte(out), &rs) != nil {
				return fmt.Errorf("%s dns list: %v %s", h.name, err, out)
			}
			got := map[string]string{}
			var lines []string
			for _, m := range ms {
				lines = append(lines, m.ID+" "+m.State+" "+m.Host)
				if m.App == "work" {
					got[m.ID] = m.State
				}
			}
			gotTXT := map[string]string{}
			gotAlias := ""
			for _, r := range rs {
				lines = append(lines, r.Name+" "+r.Type+" "+r.Value)
				switch r.Type {
				case "TXT":
					gotTXT[strings.TrimSuffix(r.Name, ".internal")] = r.Value
				case "ALIAS":
					gotAlias = r.Value
				}
			}
			for id, st := range wantWork {
				if got[id] != st {
					return fmt.Errorf("%s: acknowledged machine %s is %q, want %s", h.name, id, got[id], st)
				}
			}
			if len(got) != len(wantWork) {
				return fmt.Errorf("%s holds %d work machines, %d acknowledged", h.name, len(got), len(wantWork))
			}
			for k, v := range wantTXT {
				if !strings.Contains(gotTXT[k], strings.Trim(v, `"`)) {
					return fmt.Errorf("%s: TXT %s is %q, want %q", h.name, k, gotTXT[k], v)
				}
			}
			if alias != "" && !strings.HasPrefix(gotAlias, alias) {
				return fmt.Errorf("%s: ALIAS cur is %q, want %s", h.name, gotAlias, alias)
			}
			sort.Strings(lines)
			cat := strings.Join(lines, "\n")
			if first == "" {
				first = cat
			} else if cat != first {
				lastDiff = fmt.Sprintf("h1:\n%s\n%s:\n%s", first, h.name, cat)
				return fmt.Errorf("catalogs differ between h1 and %s", h.name)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, lastDiff)
	}
	step(fmt.Sprintf("every acknowledged write on every host, catalogs identical (%d work machines, %d destroyed, %d TXT records)", len(wantWork), destroyed, len(wantTXT)))
	var started []string
	for id, st := range wantWork {
		if st == "started" {
			started = append(started, id)
		}
	}
	for _, err := range parallel(len(stable), func(i int) error {
		m := stable[i]
		for _, id := range started {
			if got, _, err := digShort(m.ns, "fdaa::3", id+".vm.work.internal", "AAAA"); err != nil || len(got) != 1 {
				return fmt.Errorf("%s.vm.work.internal from %s: %v %v", id, m.Host, got, err)
			}
		}
		return nil
	}) {
		if err != nil {
			t.Error(err)
		}
	}
	step(fmt.Sprintf("DNS on every host answers all %d started work machines", len(started)))

	if outside := stats.report(t, hosts); outside > 0 {
		t.Errorf("%d writes, DNS answers or pings failed outside the hosts' restarts", outside)
	}

	// Back one release: h5 on v0.2.0 with the data dir this build migrated.
	h5 := hosts[4]
	if err := h5.agent.stop(15 * time.Second); err != nil {
		t.Logf("h5 stopped: %v", err)
	}
	h5.bin = old
	h5.start(h5.args)
	// Compared as JSON: the text tables of the two releases have other columns.
	machinesOf := func(h *host) (string, error) {
		var ms []listedMachine
		out, err := w.try(h, "machines", "list", "--json")
		if err == nil {
			err = json.Unmarshal([]byte(out), &ms)
		}
		var lines []string
		for _, m := range ms {
			lines = append(lines, fmt.Sprintf("%s %s %s %s %s", m.ID, m.App, m.Host, m.Address, m.State))
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n"), err
	}
	if err := e2eproc.Eventually(30*time.Second, 300*time.Millisecond, func() error {
		a, err := machinesOf(h5)
		if err != nil {
			return err
		}
		b, err := machinesOf(hosts[0])
		if err != nil || a != b {
			return fmt.Errorf("h5 (v0.2.0 again) lists\n%s\nh1 lists\n%s", a, b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out, err := w.try(h5, "machines", "create", "--app", "work", "--json"); err != nil {
		t.Errorf("h5 back on v0.2.0 refuses a create: %v %s", err, out)
	}
	if err := pingRetry(stable[4].ns, stable[0].Address, 5); err != nil {
		t.Errorf("after the downgrade: %v", err)
	}
	step("h5 went back to v0.2.0 with its data dir: same catalog, writes and pings work")
}

// loop runs f every d, counting up, until stop is closed.
func loop(bg *sync.WaitGroup, stop <-chan struct{}, d time.Duration, f func(i int)) {
	bg.Add(1)
	go func() {
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(d):
			}
			f(i)
		}
	}()
}

func indexOf(ms []*machine, m *machine) int {
	for i, x := range ms {
		if x == m {
			return i
		}
	}
	return -1
}

// missingAddrs lists the machines' addresses absent from got, leaving out those of
// hosts skip says were restarting (a host that left drops out of DNS by design).
func missingAddrs(ms []*machine, got []string, skip func(host string) bool) []string {
	have := map[string]bool{}
	for _, a := range got {
		have[a] = true
	}
	var out []string
	for _, m := range ms {
		if !have[m.Address] && !skip(m.Host) {
			out = append(out, m.Host+":"+m.Address)
		}
	}
	return out
}

// upgradeWrite runs one workload write on a host chosen round-robin; stops, starts
// and destroys go through another host than the machine's, so they are forwarded.
func upgradeWrite(w *world, hosts []*host, wl *workload, win *windows, stats *upgradeStats, rng *rand.Rand, i int) {
	h := hosts[i%len(hosts)]
	pick := func(state string) (id, owner string) {
		wl.mu.Lock()
		defer wl.mu.Unlock()
		var ids []string
		for id, st := range wl.machines {
			if st == state || state == "" {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return "", ""
		}
		sort.Strings(ids)
		id = ids[rng.Intn(len(ids))]
		return id, wl.owner[id]
	}
	t0 := time.Now()
	var err error
	var out, owner string
	switch op := i % 7; {
	case op <= 1:
		out, err = w.try(h, "machines", "create", "--app", "work", "--org", "acme", "--json")
		var m listedMachine
		if err == nil && json.Unmarshal([]byte(out), &m) == nil && m.ID != "" {
			wl.mu.Lock()
			wl.machines[m.ID], wl.owner[m.ID] = "started", h.name
			wl.mu.Unlock()
		}
	case op == 2 || op == 3 || op == 4:
		verb, from, to := "stop", "started", "stopped"
		if op == 3 {
			verb, from, to = "start", "stopped", "started"
		}
		if op == 4 {
			verb, from, to = "destroy", "", ""
		}
		id, own := pick(from)
		if id == "" {
			return
		}
		owner = own
		out, err = w.try(h, "machines", verb, id)
		if err == nil {
			wl.mu.Lock()
			if verb == "destroy" {
				delete(wl.machines, id)
				wl.destroyed[id] = true
			} else {
				wl.machines[id] = to
			}
			wl.mu.Unlock()
		}
	case op == 5:
		name, val := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		out, err = w.try(h, "dns", "add", "acme", name, "TXT", val)
		if err == nil {
			wl.mu.Lock()
			wl.txt[name] = val
			wl.mu.Unlock()
		}
	case op == 6:
		wl.mu.Lock()
		target := "web"
		if wl.alias == "web" {
			target = "work"
		}
		wl.mu.Unlock()
		out, err = w.try(h, "dns", "add", "acme", "cur", "ALIAS", target)
		if err == nil {
			wl.mu.Lock()
			wl.alias = target
			wl.mu.Unlock()
		}
	}
	t1 := time.Now()
	restarting := win.in(h.name, t0, t1) || (owner != "" && win.in(owner, t0, t1))
	stats.note(stats.writes, h.name, err != nil, restarting, fmt.Sprintf("%v: %s", err, strings.TrimSpace(out)))
}

// TestUpgradeFromFirstRelease: v0.1.0 predates the replay seal, so while the fleet
// is mixed the two sides cannot exchange catalog messages. Each upgraded host opens
// its v0.1.0 data dir with every record, says which members it cannot talk to and
// why (log, members, doctor), accepts writes, and once every host is upgraded every
// write acknowledged on either side is on every host.
func TestUpgradeFromFirstRelease(t *testing.T) {
	requireEnv(t)
	old := releaseBin(t, releaseV010)
	step := stepLogger(t)
	w := newWorld(t, "f")
	var hosts []*host
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, w.addHost(i, hostOpts{region: "ord", bin: old}))
	}
	w.waitMembers(hosts, "h1", "h2", "h3")
	w.cli(hosts[0], "orgs", "create", "acme")
	w.cli(hosts[0], "apps", "create", "web", "--org", "acme")
	acked := map[string]string{} // machine id → host that acknowledged it
	create := func(h *host) (string, error) {
		out, err := w.try(h, "machines", "create", "--app", "web", "--json")
		var m listedMachine
		if err == nil {
			if err = json.Unmarshal([]byte(out), &m); err == nil {
				acked[m.ID] = h.name
				return m.ID, nil
			}
		}
		return "", fmt.Errorf("create on %s: %v %s", h.name, err, out)
	}
	for _, h := range hosts {
		if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error { _, err := create(h); return err }); err != nil {
			t.Fatal(err)
		}
	}
	list := func(h *host) (map[string]string, error) {
		var ms []listedMachine
		out, err := w.try(h, "machines", "list", "--json")
		if err == nil {
			err = json.Unmarshal([]byte(out), &ms)
		}
		got := map[string]string{}
		for _, m := range ms {
			got[m.ID] = m.State
		}
		return got, err
	}
	if err := e2eproc.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		for _, h := range hosts {
			if got, err := list(h); err != nil || len(got) != len(acked) {
				return fmt.Errorf("%s lists %v (%v), want %d machines", h.name, got, err, len(acked))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	step("3 hosts on v0.1.0 with an org, an app and 3 machines")

	for n, h := range hosts {
		before, err := list(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.agent.stop(15 * time.Second); err != nil {
			t.Logf("%s (v0.1.0) stopped: %v", h.name, err)
		}
		h.bin = ""
		h.start(h.args)
		t0 := time.Now() // its API answers
		after, err := list(h)
		if err != nil {
			t.Fatal(err)
		}
		for id := range before {
			if _, ok := after[id]; !ok {
				t.Errorf("%s lost machine %s opening its v0.1.0 data dir", h.name, id)
			}
		}
		if !strings.Contains(h.agent.output(), "data dir migrated") {
			t.Errorf("%s did not log its data dir's migration", h.name)
		}
		// Writes: accepted as soon as the host hears its members.
		var id string
		if err := e2eproc.Eventually(30*time.Second, 200*time.Millisecond, func() error { id, err = create(h); return err }); err != nil {
			t.Fatal(err)
		}
		step(fmt.Sprintf("%s runs this build: its v0.1.0 data dir opened with all %d machines; a create was accepted %.1fs after its API answered", h.name, len(before), time.Since(t0).Seconds()))
		oldOnes := hosts[n+1:]
		if len(oldOnes) == 0 {
			break
		}
		// It names every member it cannot talk to, and why: members, log, doctor.
		if err := e2eproc.Eventually(30*time.Second, 300*time.Millisecond, func() error {
			var ms []struct {
				Name           string `json:"name"`
				Version        string `json:"version"`
				VersionProblem string `json:"version_problem"`
			}
			out, err := w.try(h, "members", "--json")
			if err != nil || json.Unmarshal([]byte(out), &ms) != nil {
				return fmt.Errorf("members: %v %s", err, out)
			}
			problems := map[string]string{}
			for _, m := range ms {
				problems[m.Name] = m.VersionProblem
			}
			for _, o := range oldOnes {
				if !strings.Contains(problems[o.name], "v0.1.0") {
					return fmt.Errorf("%s's members does not say it cannot talk to %s (v0.1.0): %s", h.name, o.name, out)
				}
			}
			for _, o := range hosts[:n] {
				if problems[o.name] != "" {
					return fmt.Errorf("%s says it cannot talk to upgraded %s: %s", h.name, o.name, problems[o.name])
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		log := h.agent.output()
		for _, o := range oldOnes {
			if !strings.Contains(log, "cannot exchange gossip messages with a member") || !strings.Contains(log, "member="+o.name) {
				t.Errorf("%s's log has no WARN naming %s", h.name, o.name)
			}
		}
		var checks []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Detail string `json:"detail"`
		}
		out, _ := w.try(h, "doctor", "--json")                  // exit 1: a check fails
		json.NewDecoder(strings.NewReader(out)).Decode(&checks) // stderr follows the JSON
		found := false
		for _, c := range checks {
			if c.Name == "versions" {
				found = true
				if c.Status != "fail" || !strings.Contains(c.Detail, oldOnes[0].name+" runs v0.1.0") {
					t.Errorf("%s doctor versions: %s %s", h.name, c.Status, c.Detail)
				}
			}
		}
		if !found {
			t.Errorf("%s doctor has no versions check: %s", h.name, out)
		}
		// A forwarded operation to an old host fails naming the versions.
		var target string
		for mid, on := range acked {
			if on == oldOnes[0].name {
				target = mid
			}
		}
		if out, err := w.try(h, "machines", "stop", target); err == nil || !strings.Contains(out, "v0.1.0") {
			t.Errorf("stop of %s's machine through %s: %v %s (want a refusal naming the versions)", oldOnes[0].name, h.name, err, out)
		}
		// The old side keeps taking writes too.
		if _, err := create(oldOnes[0]); err != nil {
			t.Error(err)
		}
		step(fmt.Sprintf("%s names %d v0.1.0 members in members, its log and doctor; forwarded calls to them fail naming the versions; both sides accept writes (%s)", h.name, len(oldOnes), id))
	}
	if err := e2eproc.Eventually(60*time.Second, 500*time.Millisecond, func() error {
		for _, h := range hosts {
			got, err := list(h)
			if err != nil {
				return err
			}
			for id, on := range acked {
				if _, ok := got[id]; !ok {
					return fmt.Errorf("%s lacks machine %s acknowledged by %s", h.name, id, on)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("every host upgraded: all %d acknowledged machines on every host", len(acked)))
}
