package proto

import (
	"math/rand"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func TestExchangeOnReturn(t *testing.T) {
	for _, c := range []struct {
		alive int
		roll  float64
		want  bool
	}{
		{0, 0.99, true}, // no layout yet: every return
		{2, 0.99, true},
		{2 * ReturnFanout, 0.99, true},
		{1000, 0.005, true},
		{1000, 0.007, false},
		{10_000, 0.0005, true},
		{10_000, 0.5, false},
	} {
		if got := ExchangeOnReturn(c.alive, c.roll); got != c.want {
			t.Errorf("ExchangeOnReturn(%d, %v) = %v, want %v", c.alive, c.roll, got, c.want)
		}
	}
}

// TestExchangeOnReturnBounded: the exchanges a heal or one host's return starts,
// fleet-wide, stay near ReturnFanout per returning host (not one per pair).
func TestExchangeOnReturnBounded(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const n = 10_000
	// A partition of a third heals: every pair across it is seen returning by the
	// lower name of the two, half the pairs.
	a, b := n/3, n-n/3
	exchanges := 0
	for range a * b / 2 {
		if ExchangeOnReturn(n, rng.Float64()) {
			exchanges++
		}
	}
	// a·b/2 pairs × 2·ReturnFanout/n ≈ 6,667: under one per host, against
	// 11 million with an exchange per pair.
	if exchanges < 6000 || exchanges > 7400 {
		t.Fatalf("heal of %d+%d hosts: %d exchanges, want about %d", a, b, exchanges, a*b*ReturnFanout/n)
	}
	// One host returns: the lower-named half of the others each roll.
	exchanges = 0
	for range 1000 {
		for range (n - 1) / 2 {
			if ExchangeOnReturn(n, rng.Float64()) {
				exchanges++
			}
		}
	}
	if per := float64(exchanges) / 1000; per < ReturnFanout-0.5 || per > ReturnFanout+0.5 {
		t.Fatalf("one host's return: %.2f exchanges on average, want about %d", per, ReturnFanout)
	}
}

// TestReturnRepairRounds: tree traffic lets a host skip periodic rounds, except in
// the window after a member returned, when every round runs at a quarter of the
// period.
func TestReturnRepairRounds(t *testing.T) {
	ae := NewAntiEntropy(catalog.New("h1"), 0)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	base := time.Second
	ae.NoteChange(t0)
	if ae.Due(t0.Add(100 * time.Millisecond)) {
		t.Fatal("a round right after a tree delivery was not skipped")
	}
	if p := ae.Period(t0, base); p != base {
		t.Fatalf("period without a return: %v", p)
	}
	ae.NoteReturn(t0.Add(time.Second))
	for i := range 8 {
		now := t0.Add(time.Second + time.Duration(i)*base/4)
		ae.NoteChange(now)
		if !ae.Due(now) {
			t.Fatalf("round %d after a return was skipped", i)
		}
		if p := ae.Period(now, base); p != base/4 {
			t.Fatalf("period after a return: %v", p)
		}
	}
	later := t0.Add(time.Second + returnRounds)
	if p := ae.Period(later, base); p != base {
		t.Fatalf("period %v after the window: %v", returnRounds, p)
	}
	ae.NoteChange(later)
	if ae.Due(later) {
		t.Fatal("after the window, tree traffic no longer skips rounds")
	}
}
