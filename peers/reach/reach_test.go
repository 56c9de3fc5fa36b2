package reach

import (
	"slices"
	"testing"
	"time"
)

// wgPeer models the far side of an idle tunnel at its least talkative, as WireGuard
// behaves: it never sends on its own (its persistent keepalive timer restarts on
// everything it receives), but a data packet arms a keepalive that it sends 10 s
// later (KEEPALIVE_TIMEOUT) unless it sent something meanwhile.
type wgPeer struct {
	answerAt time.Time // zero: nothing armed
}

// TestTrackerNudges plays one idle tunnel second by second on a fake clock: it is
// never called dead while it works, is dead within DeadAfter of being blocked, and
// is back once the answers get through again.
func TestTrackerNudges(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tr := New()
	var far wgPeer
	var rx int64
	blockFrom, blockTo := 300, 400
	var deadAt, backAt int
	for sec := 0; sec <= 500; sec++ {
		now := t0.Add(time.Duration(sec) * time.Second)
		blocked := sec >= blockFrom && sec < blockTo
		if !far.answerAt.IsZero() && !now.Before(far.answerAt) {
			far.answerAt = time.Time{}
			if !blocked {
				rx += 32
			}
		}
		changed := tr.Observe(now, []Sample{{Host: "h2", RxBytes: rx, Nudgeable: true}})
		for _, h := range tr.Nudge(now) {
			if h != "h2" {
				t.Fatalf("nudged %s", h)
			}
			if !blocked && far.answerAt.IsZero() {
				far.answerAt = now.Add(10 * time.Second)
			}
		}
		dead := slices.Contains(tr.Unreachable(), "h2")
		switch {
		case dead && sec < blockFrom:
			t.Fatalf("a working idle tunnel called dead at %d s (silent %v)", sec, tr.Silence(now, "h2"))
		case changed && dead:
			deadAt = sec
		case changed && !dead:
			backAt = sec
		}
	}
	if deadAt < blockFrom || deadAt > blockFrom+int(DeadAfter/time.Second)+1 {
		t.Errorf("blocked at %d s, dead at %d s; want within %v", blockFrom, deadAt, DeadAfter)
	}
	if backAt < blockTo || backAt > blockTo+int((NudgeAfter+10*time.Second)/time.Second)+1 {
		t.Errorf("unblocked at %d s, back at %d s", blockTo, backAt)
	}
	t.Logf("dead %d s after the block, back %d s after it lifted", deadAt-blockFrom, backAt-blockTo)
}

func TestTrackerUnnudgeable(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tr := New()
	s := []Sample{{Host: "h3", RxBytes: 5}}
	tr.Observe(t0, s)
	if tr.Observe(t0.Add(DeadAfter+time.Second), s) || len(tr.Nudge(t0.Add(time.Minute))) != 0 {
		t.Fatal("a tunnel that cannot be nudged was judged by the nudge rule")
	}
	if !tr.Observe(t0.Add(DeadAfterUnnudged+time.Second), s) || !slices.Equal(tr.Unreachable(), []string{"h3"}) {
		t.Fatalf("after reject-after: %v", tr.Unreachable())
	}
	// A peer that disappears is forgotten; one reset to a lower counter starts over.
	tr.Observe(t0.Add(DeadAfterUnnudged+2*time.Second), []Sample{{Host: "h4", RxBytes: 1}})
	if len(tr.Unreachable()) != 0 || tr.Silence(t0, "h3") != -1 {
		t.Errorf("after removal: %v", tr.Unreachable())
	}
}
