package replica

import (
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// ttl 16 s: the collector runs every second and forgets after 14 s out of touch.
const ttl = 16 * time.Second

func seed(f *fixture) (own, others []*catalog.Record) {
	own = []*catalog.Record{machine("m0", "h0", 7)}
	others = []*catalog.Record{org("acme", 2), machine("m1", "h1", 9), machine("m2", "h0", 8)} // m2: an older incarnation's
	for _, r := range append(append([]*catalog.Record{}, own...), others...) {
		if err := f.disk.Put(r); err != nil {
			panic(err)
		}
	}
	return own, others
}

// TestRestoreForgetsAfterLongAbsence: a host whose last contact is older than the
// away limit forgets, in memory and on disk, everything but its own machines.
func TestRestoreForgetsAfterLongAbsence(t *testing.T) {
	for _, tc := range []struct {
		away   time.Duration
		known  bool
		forget bool
	}{
		{13 * time.Second, true, false},
		{14 * time.Second, true, false},
		{15 * time.Second, true, true},
		{15 * time.Second, false, false}, // a new identity has nothing of its own to keep
	} {
		f := newFixture(t, ttl)
		own, others := seed(f)
		f.disk.alive = t0.Add(-tc.away)
		if err := f.r.Restore("h0", 7, tc.known); err != nil {
			t.Fatal(err)
		}
		for _, r := range own {
			if f.cat.Get(r.ID()) == nil || f.disk.get(r.ID()) == nil {
				t.Errorf("away %v: own %v forgotten", tc.away, r.ID())
			}
		}
		for _, r := range others {
			if gone := f.cat.Get(r.ID()) == nil && f.disk.get(r.ID()) == nil; gone != tc.forget {
				t.Errorf("away %v known %v: %v forgotten = %v, want %v", tc.away, tc.known, r.ID(), gone, tc.forget)
			}
		}
	}
}

// TestCollectorForgetsWhenCutOff: a running host out of touch longer than the away
// limit forgets what others wrote, once; while in touch it records the contact time.
func TestCollectorForgetsWhenCutOff(t *testing.T) {
	f := newFixture(t, ttl)
	own, others := seed(f)
	if err := f.r.Restore("h0", 7, true); err != nil {
		t.Fatal(err)
	}
	f.r.StartGC()
	f.step(t, time.Second)
	f.waitTimer(t) // the round is done
	if at, _, _ := f.disk.AliveAt(); !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("contact time %v, want %v", at, t0.Add(time.Second))
	}
	f.clus.set(false)
	for i := 0; i < 14; i++ {
		f.step(t, time.Second)
	}
	f.waitTimer(t)
	if f.cat.Get(others[0].ID()) == nil {
		t.Fatal("forgot at the away limit, not after it")
	}
	f.step(t, time.Second)
	f.waitTimer(t)
	for _, r := range others {
		if f.cat.Get(r.ID()) != nil || f.disk.get(r.ID()) != nil {
			t.Errorf("%v kept after the away limit", r.ID())
		}
	}
	for _, r := range own {
		if f.cat.Get(r.ID()) == nil {
			t.Errorf("own %v forgotten", r.ID())
		}
	}
}

// TestTombstonesCollectedAfterTTL: a tombstone leaves memory and disk once it is
// older than the TTL, not before.
func TestTombstonesCollectedAfterTTL(t *testing.T) {
	f := newFixture(t, ttl)
	if err := f.r.Restore("h0", 7, true); err != nil {
		t.Fatal(err)
	}
	a := org("acme", 2)
	if err := f.r.Record(a); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Record(f.r.Tombstones(f.cat.Get(a.ID()))...); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(ttl)
	f.r.collect(f.clock.Now())
	if f.cat.Get(a.ID()) == nil || f.disk.get(a.ID()) == nil {
		t.Fatal("tombstone collected at the TTL, before it passed")
	}
	f.clock.Advance(time.Second + time.Millisecond)
	f.r.collect(f.clock.Now())
	if f.cat.Get(a.ID()) != nil || f.disk.get(a.ID()) != nil {
		t.Fatal("tombstone kept past the TTL")
	}
}
