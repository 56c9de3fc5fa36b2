package netns

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// TestHealthAndReach runs three hosts with three machines of web, each with an HTTP
// check every second (rise 2, fall 3), and watches web.internal from a machine on
// every host (through fdaa::3, so each host answers from its own view):
//   - the HTTP server of one machine stops: it leaves web.internal on every host
//     within interval × fall + 1 s, and machines list shows it critical with the
//     check's output; it starts again: back within interval × rise + 1 s;
//   - idle tunnels stay reachable (no host changes its view in 30 s without traffic);
//   - UDP 51820 is blocked between h1 and h2 (nftables in their namespaces, gossip
//     untouched): h1 stops answering h2's machine and h2 h1's within 30 s, h3 keeps
//     answering both, and doctor fails on h1 and h2 at once; unblocked, both come
//     back.
func TestHealthAndReach(t *testing.T) {
	requireEnv(t)
	step := stepLogger(t)
	w := newWorld(t, "hl")
	metrics := func(i int) []string { return []string{"--metrics-addr", fmt.Sprintf("198.18.0.%d:9273", i)} }
	h1 := w.addHost(1, hostOpts{region: "ord", extra: metrics(1)})
	h2 := w.addHost(2, hostOpts{region: "ord", extra: metrics(2)})
	h3 := w.addHost(3, hostOpts{region: "ams", extra: metrics(3)})
	hosts := []*host{h1, h2, h3}
	w.waitMembers(hosts, "h1", "h2", "h3")
	w.cli(h1, "orgs", "create", "acme")
	w.cli(h1, "apps", "create", "web", "--org", "acme")
	const (
		interval = time.Second
		rise     = 2
		fall     = 3
	)
	ms := make([]*machine, len(hosts))
	for i, h := range hosts {
		ms[i] = w.createMachineWith(h, "web", fmt.Sprintf("m%d", i+1), "--check", "http:8080/", "--check-interval", interval.String(),
			"--check-timeout", "500ms", "--check-rise", strconv.Itoa(rise), "--check-fall", strconv.Itoa(fall))
	}
	step("three machines with checks")
	watch := make([]*proc, len(hosts))
	for i := range hosts {
		watch[i] = w.helper(ms[i].ns, fmt.Sprintf("watch%d", i+1), "watch-aaaa", "fdaa::3", "web.internal")
	}
	set := func(idx ...int) string {
		var as []string
		for _, i := range idx {
			as = append(as, ms[i].Address)
		}
		sortStrings(as)
		return strings.Join(as, ",")
	}
	all := set(0, 1, 2)
	for i := range hosts {
		w.waitView(watch[i], all, time.Now(), 30*time.Second)
	}
	w.waitHealth(h1, ms[1].ID, "passing", 20*time.Second)
	step("every host answers all three, all passing")

	// A machine's HTTP server stops.
	t0 := time.Now()
	ms[1].http.kill()
	bound := interval*fall + time.Second
	for i, h := range hosts {
		d := w.waitView(watch[i], set(0, 2), t0, 30*time.Second)
		t.Logf("%s: critical machine out of web.internal after %v (bound %v)", h.name, d.Round(time.Millisecond), bound)
		if d > bound {
			t.Errorf("%s: took %v, want within interval × fall + 1 s = %v", h.name, d, bound)
		}
	}
	var got []struct {
		ID     string `json:"id"`
		Health string `json:"health"`
		Checks []struct {
			Kind, Target, Status, Output string
			CheckedAt                    *time.Time `json:"checked_at"`
		} `json:"checks"`
	}
	for _, h := range []*host{h1, h2} { // h1 from the catalog, h2 (the owner) live
		w.cliJSON(h, &got, "machines", "list", "--app", "web")
		for _, m := range got {
			if m.ID != ms[1].ID {
				continue
			}
			if m.Health != "critical" || len(m.Checks) != 1 || m.Checks[0].Status != "critical" || m.Checks[0].Kind != "http" ||
				m.Checks[0].Target != "8080/" || !strings.Contains(m.Checks[0].Output, "refused") || m.Checks[0].CheckedAt == nil {
				t.Errorf("machines list on %s: %+v", h.name, m)
			}
		}
	}
	if out := w.cli(h1, "machines", "list", "--app", "web"); !strings.Contains(out, "HEALTH") || !strings.Contains(out, "critical") {
		t.Errorf("machines list has no HEALTH column with critical:\n%s", out)
	}
	step("critical machine out everywhere")

	t1 := time.Now()
	ms[1].http = w.helper(ms[1].ns, "m2-http-again", "http", "8080", ms[1].tag)
	bound = interval*rise + time.Second
	for i, h := range hosts {
		d := w.waitView(watch[i], all, t1, 30*time.Second)
		t.Logf("%s: machine back in web.internal after %v (bound %v)", h.name, d.Round(time.Millisecond), bound)
		if d > bound {
			t.Errorf("%s: took %v, want within interval × rise + 1 s = %v", h.name, d, bound)
		}
	}
	step("passing again everywhere")

	// Idle tunnels are not dead: with no traffic between the hosts for more than
	// twice the dead time, no host has changed its view even once.
	time.Sleep(30 * time.Second) // the condition is that nothing happens for this long
	for _, h := range hosts {
		if v := w.metric(h, "dogwood_wireguard_reachability_changes_total"); v != "0" {
			t.Errorf("%s changed its reachability view on idle tunnels %s times", h.name, v)
		}
	}
	step("idle tunnels stayed reachable")

	// Block WireGuard between h1 and h2; gossip keeps working.
	block := func(h *host, peer string) {
		nsMust(t, h.ns, "nft", "add table inet dwblock19")
		nsMust(t, h.ns, "nft", "add chain inet dwblock19 in { type filter hook input priority -10 ; }")
		nsMust(t, h.ns, "nft", "add rule inet dwblock19 in ip saddr "+peer+" udp dport 51820 drop")
	}
	t2 := time.Now()
	block(h1, h2.addr)
	block(h2, h1.addr)
	for _, c := range []struct {
		i    int
		want string
	}{{0, set(0, 2)}, {1, set(1, 2)}} {
		d := w.waitView(watch[c.i], c.want, t2, 45*time.Second)
		t.Logf("%s: the other side's machine out of web.internal after %v", hosts[c.i].name, d.Round(time.Millisecond))
		if d > 30*time.Second {
			t.Errorf("%s: took %v, want within 30 s", hosts[c.i].name, d)
		}
	}
	for i, h := range hosts[:2] {
		other := hosts[1-i]
		cs, err := w.doctor(h)
		if err != nil {
			t.Fatal(err)
		}
		if c := cs["handshake "+other.name]; c.Status != "fail" || !strings.Contains(c.Next, "51820/udp") {
			t.Errorf("doctor on %s: handshake %s: %+v", h.name, other.name, c)
		}
	}
	if cs, err := w.doctor(h3); err != nil || len(failures(cs)) != 0 {
		t.Errorf("doctor on h3 (reaches both): %v %v", err, failures(cs))
	}
	if lines := viewLines(watch[2]); lines[len(lines)-1].set != all {
		t.Errorf("h3 stopped answering both: %+v", lines)
	}
	if m := w.metric(h1, `dogwood_wireguard_peer_reachable{peer="h2"}`); m != "0" {
		t.Errorf("h1's reachability metric for h2: %q", m)
	}
	var st struct {
		WireGuard struct {
			Peers []struct {
				Host      string `json:"host"`
				Reachable *bool  `json:"reachable"`
			} `json:"peers"`
		} `json:"wireguard"`
	}
	w.cliJSON(h1, &st, "status")
	for _, p := range st.WireGuard.Peers {
		if want := p.Host != "h2"; p.Reachable == nil || *p.Reachable != want {
			t.Errorf("status on h1: peer %s reachable %v, want %v", p.Host, p.Reachable, want)
		}
	}
	step("h1 and h2 leave each other out; h3 answers both")

	t3 := time.Now()
	for _, h := range hosts[:2] {
		nsMust(t, h.ns, "nft", "delete table inet dwblock19")
	}
	for i, h := range hosts[:2] {
		d := w.waitView(watch[i], all, t3, 45*time.Second)
		t.Logf("%s: back after %v", h.name, d.Round(time.Millisecond))
	}
	for _, h := range hosts[:2] {
		if err := e2eproc.Eventually(30*time.Second, 500*time.Millisecond, func() error {
			cs, err := w.doctor(h)
			if err != nil {
				return err
			}
			if f := failures(cs); len(f) > 0 {
				return fmt.Errorf("%v", f)
			}
			return nil
		}); err != nil {
			t.Errorf("doctor on %s after unblocking: %v", h.name, err)
		}
	}
	step("unblocked: back everywhere")
}

// createMachineWith is createMachine with more flags for `machines create`.
func (w *world) createMachineWith(h *host, app, suffix string, flags ...string) *machine {
	w.t.Helper()
	ns := w.netns(suffix)
	var m machine
	var out string
	err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		var err error
		out, err = w.try(h, append([]string{"machines", "create", "--app", app, "--netns", ns, "--json"}, flags...)...)
		return err
	})
	if err != nil {
		w.t.Fatalf("machines create --app %s on %s: %v\n%s", app, h.name, err, out)
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Address == "" {
		w.t.Fatalf("machines create output: %v\n%s", err, out)
	}
	m.ns, m.tag = ns, app+"@"+h.name
	m.http = w.helper(ns, suffix+"-http", "http", "8080", m.tag)
	return &m
}

type viewLine struct {
	at  time.Time
	set string
}

// viewLines parses a watch-aaaa helper's output.
func viewLines(p *proc) []viewLine {
	var out []viewLine
	for _, l := range strings.Split(p.output(), "\n") {
		ts, set, ok := strings.Cut(l, " ")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, viewLine{time.Unix(0, n), set})
	}
	return out
}

// waitView waits until a watcher's latest answer is want and returns how long after
// since it changed to it.
func (w *world) waitView(p *proc, want string, since time.Time, deadline time.Duration) time.Duration {
	w.t.Helper()
	var lines []viewLine
	err := e2eproc.Eventually(deadline, 50*time.Millisecond, func() error {
		lines = viewLines(p)
		if len(lines) == 0 || lines[len(lines)-1].set != want {
			return fmt.Errorf("answer is not %s", want)
		}
		return nil
	})
	if err != nil {
		w.t.Fatalf("%s: %v; answers: %+v", p.name, err, lines)
	}
	return lines[len(lines)-1].at.Sub(since)
}

// metric returns the value of one series on h's metrics endpoint ("" if absent).
func (w *world) metric(h *host, series string) string {
	w.t.Helper()
	out, err := e2eproc.NSRun(10*time.Second, h.ns, "curl", "-sS", "--max-time", "5", "http://"+h.addr+":9273/metrics")
	if err != nil {
		w.t.Fatalf("metrics of %s: %v %s", h.name, err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// waitHealth waits until h shows machine id with the given health.
func (w *world) waitHealth(h *host, id, health string, deadline time.Duration) {
	w.t.Helper()
	var ms []struct {
		ID     string `json:"id"`
		Health string `json:"health"`
	}
	if err := e2eproc.Eventually(deadline, 200*time.Millisecond, func() error {
		w.cliJSON(h, &ms, "machines", "list")
		for _, m := range ms {
			if m.ID == id && m.Health == health {
				return nil
			}
		}
		return fmt.Errorf("machine %s is not %s on %s: %+v", id, health, h.name, ms)
	}); err != nil {
		w.t.Fatal(err)
	}
}
