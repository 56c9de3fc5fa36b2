package reach

import (
	"slices"
	"testing"
	"time"
)

// TestTracker plays a host pair's receive counters second by second on a fake clock.
func TestTracker(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tr := New()
	rx := map[string]int64{"h2": 0, "h3": 0, "old": 0}
	ka := map[string]time.Duration{"h2": 5 * time.Second, "h3": 5 * time.Second}
	var log []string
	step := func(sec int) {
		var ss []Sample
		for _, h := range []string{"h2", "h3", "old"} {
			ss = append(ss, Sample{Host: h, RxBytes: rx[h], Keepalive: ka[h]})
		}
		if tr.Observe(t0.Add(time.Duration(sec)*time.Second), ss) {
			log = append(log, slices.Clone(tr.Unreachable())...)
			log = append(log, "|")
		}
	}
	blocked := map[string]bool{}
	for sec := 0; sec <= 120; sec++ {
		switch sec {
		case 10:
			blocked["h2"] = true
		case 60:
			blocked["h2"] = false
		}
		// Keepalives: every 5 s from h2 and h3, every 25 s from the old release.
		if sec%5 == 0 && !blocked["h2"] {
			rx["h2"] += 32
		}
		if sec%5 == 0 {
			rx["h3"] += 32
		}
		if sec%25 == 0 {
			rx["old"] += 32
		}
		step(sec)
		if sec == 25 && !slices.Equal(tr.Unreachable(), []string{"h2"}) {
			t.Fatalf("at 25 s (last keepalive from h2 at 5 s): unreachable %v", tr.Unreachable())
		}
		if sec == 19 && len(tr.Unreachable()) != 0 {
			t.Fatalf("at 19 s: unreachable %v", tr.Unreachable())
		}
	}
	if want := []string{"h2", "|", "|"}; !slices.Equal(log, want) {
		t.Errorf("changes %q, want %q (h2 out at 21 s, back at 60 s; old never)", log, want)
	}
	if d := tr.Silence(t0.Add(120*time.Second), "old"); d != 20*time.Second {
		t.Errorf("silence of old: %v", d)
	}
	// A peer that disappears is forgotten; one reset to a lower counter starts over.
	if !tr.Observe(t0.Add(200*time.Second), []Sample{{Host: "h3", RxBytes: 1}}) && len(tr.Unreachable()) != 0 {
		t.Errorf("after removals: %v", tr.Unreachable())
	}
	if tr.Silence(t0, "h2") != -1 {
		t.Error("h2 not forgotten")
	}
}

func TestDeadAfter(t *testing.T) {
	if DeadAfter(5*time.Second) != 15*time.Second || DeadAfter(0) != 55*time.Second {
		t.Errorf("DeadAfter: %v %v", DeadAfter(5*time.Second), DeadAfter(0))
	}
}
