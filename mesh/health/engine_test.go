package health

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// fakeRun drives an engine on a fake clock: every due probe gets the result results
// says for the current step.
type fakeRun struct {
	t   *testing.T
	e   *Engine
	now time.Time
	log []string
}

func newFake(t *testing.T, targets ...Target) *fakeRun {
	f := &fakeRun{t: t, e: NewEngine(), now: time.Unix(1_000_000, 0)}
	f.e.Set(f.now, targets)
	return f
}

// step advances to the next due time and answers every due probe with pass.
func (f *fakeRun) step(pass func(Probe) bool) []Transition {
	next := f.e.Next()
	if next.IsZero() {
		f.t.Fatal("nothing scheduled")
	}
	if next.After(f.now) {
		f.now = next
	}
	var trs []Transition
	for _, p := range f.e.Due(f.now, nil) {
		if tr, ok := f.e.Result(f.now, p, pass(p), "out"); ok {
			trs = append(trs, tr)
			f.log = append(f.log, tr.From+">"+tr.To)
		}
	}
	return trs
}

func always(v bool) func(Probe) bool { return func(Probe) bool { return v } }

func target(id string, checks ...catalog.Check) Target {
	return Target{ID: id, Addr: netip.MustParseAddr("fdaa:0:1:2:3:4:5:2"), Checks: checks}
}

func tcp(port string) catalog.Check {
	return catalog.Check{Kind: catalog.CheckTCP, Target: port, Interval: catalog.Duration(10 * time.Second), Rise: 2, Fall: 3}
}

func TestRiseFall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results string // one letter per interval: p pass, f fail
		want    string // transitions, comma-separated
	}{
		{"first pass decides", "p", ">passing"},
		{"first fail decides", "f", ">critical"},
		{"passing needs fall failures", "pff", ">passing"},
		{"fall reached", "pfff", ">passing,passing>critical"},
		{"a pass resets the fall count", "pffpfff", ">passing,passing>critical"},
		{"critical needs rise passes", "fp", ">critical"},
		{"rise reached", "fpp", ">critical,critical>passing"},
		{"a failure resets the rise count", "fpfpp", ">critical,critical>passing"},
		{"flapping every interval never moves", "ppfpfpfpfpfpfpf", ">passing"},
		{"flapping in pairs never moves", "pffpffpffpffpff", ">passing"},
		{"down and up", "ppppfffppp", ">passing,passing>critical,critical>passing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, target("m1", tcp("80")))
			var got []string
			for _, r := range tc.results {
				for _, tr := range f.step(always(r == 'p')) {
					if len(tr.Checks) != 1 || tr.Checks[0].Status != tr.To || tr.Checks[0].CheckedAt == nil || !tr.Checks[0].CheckedAt.Equal(f.now) {
						t.Errorf("transition %+v at %v", tr, f.now)
					}
					got = append(got, strings.TrimPrefix(tr.From, "unknown")+">"+tr.To)
				}
			}
			if g := strings.Join(got, ","); g != tc.want {
				t.Errorf("%s: transitions %q, want %q", tc.results, g, tc.want)
			}
		})
	}
}

func TestScheduleKeepsInterval(t *testing.T) {
	f := newFake(t, target("m1", tcp("80")), target("m2", tcp("81"), tcp("82")))
	start := f.now
	runs := map[string][]time.Time{}
	for i := 0; i < 30; i++ {
		f.step(func(p Probe) bool {
			runs[p.Addr.String()] = append(runs[p.Addr.String()], f.now)
			return true
		})
	}
	if len(runs) != 3 {
		t.Fatalf("ran %d checks, want 3", len(runs))
	}
	for k, ts := range runs {
		if first := ts[0].Sub(start); first < 0 || first >= 10*time.Second {
			t.Errorf("%s: first run after %v, want within one interval", k, first)
		}
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d != 10*time.Second {
				t.Errorf("%s: runs %v apart", k, d)
			}
		}
	}
}

func TestAggregateAcrossChecks(t *testing.T) {
	f := newFake(t, target("m1", tcp("80"), tcp("81")))
	fail81 := func(p Probe) bool { return p.Addr.Port() != 81 }
	for i := 0; i < 4; i++ {
		f.step(fail81)
	}
	if got := f.e.Counts(); got[catalog.HealthCritical] != 1 {
		t.Errorf("one failing check of two: counts %v, want critical", got)
	}
	live := f.e.Live("m1")
	if live[0].Status != catalog.HealthPassing || live[1].Status != catalog.HealthCritical || live[1].Output != "out" {
		t.Errorf("live view %+v", live)
	}
}

func TestSetKeepsStateAndResumes(t *testing.T) {
	f := newFake(t, target("m1", tcp("80")))
	for i := 0; i < 2; i++ {
		f.step(always(true))
	}
	// The same target again (a catalog change elsewhere) keeps state: no transition.
	f.e.Set(f.now, []Target{target("m1", tcp("80"))})
	if trs := f.step(always(true)); len(trs) != 0 {
		t.Errorf("unchanged target re-set: %+v", trs)
	}
	// A restarted agent resumes from the status it wrote: a pass is no transition,
	// and it takes fall failures to go critical.
	c := tcp("80")
	c.Status = catalog.HealthPassing
	g := newFake(t, target("m1", c))
	if trs := g.step(always(true)); len(trs) != 0 {
		t.Errorf("resumed passing, pass: %+v", trs)
	}
	for i := 0; i < 2; i++ {
		if trs := g.step(always(false)); len(trs) != 0 {
			t.Errorf("resumed passing, failure %d: %+v", i+1, trs)
		}
	}
	if trs := g.step(always(false)); len(trs) != 1 || trs[0].To != catalog.HealthCritical {
		t.Errorf("third failure: %+v", trs)
	}
	// A machine that goes away stops being checked; a result in flight is dropped.
	due := g.e.Due(g.now.Add(time.Hour), nil)
	g.e.Set(g.now, nil)
	if g.e.Len() != 0 || !g.e.Next().IsZero() {
		t.Errorf("removed machine still scheduled")
	}
	for _, p := range due {
		if _, ok := g.e.Result(g.now, p, true, ""); ok {
			t.Error("a result for a removed machine made a transition")
		}
	}
}

func TestInFlightSkipsARun(t *testing.T) {
	f := newFake(t, target("m1", tcp("80")))
	f.now = f.e.Next()
	first := f.e.Due(f.now, nil)
	if len(first) != 1 {
		t.Fatalf("due %d", len(first))
	}
	f.now = f.e.Next()
	if again := f.e.Due(f.now, nil); len(again) != 0 {
		t.Errorf("a check still in flight ran again: %+v", again)
	}
	if _, ok := f.e.Result(f.now, first[0], true, ""); !ok {
		t.Error("late result dropped")
	}
}
