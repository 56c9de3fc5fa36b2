package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// oneWay drops everything from's namespace sends to to on the underlay, and nothing
// in the other direction: the asymmetric link a broken route or a one-sided
// firewall rule makes.
func (w *world) oneWay(from, to *host) {
	rules := fmt.Sprintf("table inet chaos {\n\tchain out { type filter hook output priority -10; ip daddr %s drop; }\n}\n", to.addr)
	f := filepath.Join(w.dir, from.name+"-oneway.nft")
	os.WriteFile(f, []byte(rules), 0o644)
	if out, err := e2eproc.NSRun(10*time.Second, from.ns, "nft", "-f", f); err != nil {
		w.t.Fatalf("one-way link %s→%s: %v %s", from.name, to.name, err, out)
	}
}

// TestAsymmetricLinkNamedCreates is issue 21's nemesis for named creates: five
// hosts, the link h1→h2 broken in one direction only. Named creates (apps and DNS
// records, which need a majority of their arbiters) are made on every host, those
// on both ends of the bad link included. The first create on a host may pay one RPC
// timeout to learn the link is bad; after that none may wait out a timeout, and
// under `make bench` (DOGWOOD_BENCH=1, a quiet machine) p99 over every host must be
// ≤ 1 s (before: 20 s on both ends, and about half of them timed out).
func TestAsymmetricLinkNamedCreates(t *testing.T) {
	requireEnv(t)
	w := newWorld(t)
	for i := 1; i <= 5; i++ {
		w.addHost(i, false)
	}
	h1, h2 := w.h[0], w.h[1]
	if out, err := w.cli(h1, "orgs", "create", "acme"); err != nil {
		t.Fatalf("orgs create: %v %s", err, out)
	}
	w.oneWay(h1, h2)
	w.logf("nemesis: h1→h2 dropped (one way)")
	defer w.heal()

	create := func(h *host, i int) (time.Duration, error) {
		args := []string{"dns", "add", "acme", fmt.Sprintf("r%s-%d", h.name, i), "TXT", "v"}
		if i%2 == 1 {
			args = []string{"apps", "create", fmt.Sprintf("a%s-%d", h.name, i), "--org", "acme"}
		}
		st := time.Now()
		out, err := w.cli(h, args...)
		d := time.Since(st)
		w.logf("%s: %v in %v (%v %s)", h.name, args[:2], d.Round(time.Millisecond), err, firstLine(out))
		if err != nil {
			return d, fmt.Errorf("%s %v: %v %s", h.name, args, err, out)
		}
		return d, nil
	}
	// Warm-up: the first create on each host is where a bad link may cost one
	// RPC timeout (3 s) before the host remembers it.
	for _, h := range w.h {
		if d, err := create(h, 0); err != nil {
			t.Fatal(err)
		} else if d > 5*time.Second {
			t.Errorf("first create on %s took %v: more than one RPC timeout", h.name, d)
		}
	}
	// One create at a time, round robin over the hosts: latency, not the
	// throughput of a 2-core machine running five agents.
	const perHost = 20
	var lat []time.Duration
	var errs []error
	for i := 1; i <= perHost; i++ {
		for _, h := range w.h {
			d, err := create(h, i)
			lat = append(lat, d)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, err := range errs {
		t.Error(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("named creates with h1→h2 broken one way: %d on 5 hosts, p50 %v, p99 %v, max %v",
		len(lat), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("BENCH asymmetric-link named creates: n=%d p50=%v p99=%v max=%v\n", len(lat),
		p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	// The protocol's promise, which holds on any machine: after the warm-up no
	// create waits out more than one RPC timeout (3 s; before the fix: 20 s, and
	// about half timed out). The latency target (p99 ≤ 1 s) is a speed target: it
	// is checked when the machine runs nothing else, by `make bench`.
	if max := lat[len(lat)-1]; max > 6*time.Second {
		t.Errorf("a named create took %v with one one-way broken link: it waited out more than one RPC timeout", max)
	}
	if os.Getenv("DOGWOOD_BENCH") != "" && p(0.99) > time.Second {
		t.Errorf("p99 of named creates %v with one one-way broken link, want ≤ 1 s", p(0.99))
	}
}
