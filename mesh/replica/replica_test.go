package replica

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

const window = 100 * time.Millisecond

// step waits until a loop waits on a timer, then moves the clock by d.
func (f *fixture) step(t *testing.T, d time.Duration) {
	t.Helper()
	f.waitTimer(t)
	f.clock.Advance(d)
}

// waitTimer waits until a loop waits on a timer.
func (f *fixture) waitTimer(t *testing.T) {
	t.Helper()
	within(t, 5*time.Second, "waiting for a loop to wait on its timer", func() { f.clock.WaitTimers(1) })
}

// recv takes one value from ch, or fails the test after 5 s.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		panic("unreachable")
	}
}

// TestDurableBeforeVisible: a record is on disk before the catalog shows it and
// published only on Flush; a write the disk refuses is neither visible nor published.
func TestDurableBeforeVisible(t *testing.T) {
	f := newFixture(t, time.Hour)
	f.disk.put = func(rs []*catalog.Record) error {
		for _, r := range rs {
			if f.cat.Get(r.ID()) != nil {
				t.Errorf("%v visible before it was durable", r.ID())
			}
		}
		return nil
	}
	a := org("a", 2)
	if err := f.r.Record(a); err != nil {
		t.Fatal(err)
	}
	if f.cat.Get(a.ID()) == nil || f.disk.get(a.ID()) == nil {
		t.Fatal("a recorded write is not visible and durable")
	}
	if f.pub.count() != 0 {
		t.Fatal("published before Flush")
	}
	f.r.Flush()
	if f.pub.count() != 1 {
		t.Fatalf("%d published after Flush, want 1", f.pub.count())
	}

	f.disk.setFailing(true)
	b := org("b", 2)
	if err := f.r.Commit(b); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("a write the disk refused: %v", err)
	}
	if f.cat.Get(b.ID()) != nil || f.pub.count() != 1 {
		t.Fatal("a write the disk refused became visible or was published")
	}
}

// TestGateAndLimits: Record refuses while the gate is closed and touches nothing;
// RecordAny (admission's own record) passes it; a record over a limit is refused and
// a tombstone never is.
func TestGateAndLimits(t *testing.T) {
	f := newFixture(t, time.Hour)
	f.gate.err = errors.New("not confirmed")
	if err := f.r.Record(org("a", 2)); err == nil || f.disk.putCount() != 0 {
		t.Fatalf("a closed gate let a write through: %v, %d puts", err, f.disk.putCount())
	}
	if err := f.r.RecordAny(org("a", 2)); err != nil {
		t.Fatalf("RecordAny: %v", err)
	}
	f.gate.err = nil
	f.r.cfg.Check = func(*catalog.Record) error { return errors.New("over the limit") }
	if err := f.r.Record(org("b", 2)); err == nil || f.cat.Get(org("b", 2).ID()) != nil {
		t.Fatalf("a record over the limit was written: %v", err)
	}
	dead := f.r.Tombstones(f.cat.Get(org("a", 2).ID()))
	if err := f.r.Record(dead...); err != nil {
		t.Fatalf("a tombstone was checked against the limits: %v", err)
	}
	if got := f.cat.Get(dead[0].ID()); !got.Deleted || got.DeletedAt != t0.Unix() {
		t.Fatalf("tombstone: %+v", got)
	}
}

// TestLostApplyRepersistsWinner: when a newer record reached the catalog and the
// disk between building a local write and recording it, the local write lands on disk
// but loses the apply; the disk must end with the winner, not with the loser.
func TestLostApplyRepersistsWinner(t *testing.T) {
	f := newFixture(t, time.Hour)
	wrote := make(chan struct{}, 10)
	f.disk.put = func([]*catalog.Record) error { wrote <- struct{}{}; return nil }
	f.r.Start()
	winner, ours := org("acme", 5), org("acme", 3)
	f.r.Merge([]*catalog.Record{winner})
	f.step(t, window)
	recv(t, wrote, "write")
	if err := f.r.Record(ours); err != nil {
		t.Fatal(err)
	}
	recv(t, wrote, "write")
	if v := f.disk.get(ours.ID()).Version; v != ours.Version {
		t.Fatalf("disk holds version %v before the rewrite, want ours", v)
	}
	f.step(t, window)
	recv(t, wrote, "write")
	if v := f.disk.get(ours.ID()).Version; v != winner.Version {
		t.Fatalf("disk ends with version %v, want the winner's %v", v, winner.Version)
	}
}

// TestMergeNeverBlocks: gossip merges from memberlist callbacks. With the disk stuck
// in a write any number of merges return, and the persister later gets each id once.
func TestMergeNeverBlocks(t *testing.T) {
	f := newFixture(t, time.Hour)
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	f.disk.put = func([]*catalog.Record) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}
	f.r.Start()
	f.r.Merge(orgs(1, 2))
	f.step(t, window)
	recv(t, entered, "write") // the persister is inside a write that does not return
	within(t, 10*time.Second, "5000 merges with the disk stuck", func() {
		for i := 0; i < 5000; i++ {
			f.r.Merge([]*catalog.Record{org(fmt.Sprintf("m%d", i%3000), uint64(2+i/3000))})
		}
	})
	close(release)
	f.waitTimer(t) // the persister waits out its next window
	if ids := f.r.persist.take(); len(ids) != 3000 {
		t.Fatalf("persister got %d ids, want the 3000 distinct ones", len(ids))
	}
}

// TestPersisterBatchesAndRetries: a burst of remote records costs one write; a
// failed write keeps them pending, says the disk is behind, and is retried with a
// doubling backoff without any new record arriving, until the disk catches up.
func TestPersisterBatchesAndRetries(t *testing.T) {
	f := newFixture(t, time.Hour)
	wrote := make(chan int, 10)
	f.disk.put = func(rs []*catalog.Record) error { wrote <- len(rs); return nil }
	f.r.Start()
	f.r.Merge(orgs(3, 2))
	f.r.Merge(orgs(2, 3))
	f.step(t, window)
	if n := recv(t, wrote, "write"); n != 3 {
		t.Fatalf("a burst of 3 ids was written as %d records", n)
	}
	if f.disk.putCount() != 1 {
		t.Fatalf("%d writes for one burst", f.disk.putCount())
	}

	f.disk.setFailing(true)
	f.r.Merge(orgs(5, 4))
	f.step(t, window)
	recv(t, wrote, "write")
	f.waitTimer(t) // the retry is scheduled: the failure is recorded
	if err := f.r.Behind(); err == nil || !strings.Contains(err.Error(), "5 records") || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("behind after a failed write: %v", err)
	}
	for _, backoff := range []time.Duration{window, 2 * window, 4 * window} {
		f.clock.Advance(backoff - time.Millisecond)
		if f.clock.Pending() != 1 {
			t.Fatalf("retried before the %v backoff", backoff)
		}
		f.clock.Advance(time.Millisecond) // the retry fires...
		f.step(t, window)                 // ...and waits its window
		recv(t, wrote, "write")
		f.waitTimer(t)
	}
	f.disk.setFailing(false)
	f.clock.Advance(8 * window)
	f.step(t, window)
	if n := recv(t, wrote, "write"); n != 5 {
		t.Fatalf("recovery wrote %d records, want 5", n)
	}
	within(t, 10*time.Second, "catching up", func() {
		for f.r.Behind() != nil {
			runtime.Gosched()
		}
	})
	for _, r := range orgs(5, 4) {
		if got := f.disk.get(r.ID()); got == nil || got.Version != r.Version {
			t.Fatalf("%v on disk: %+v", r.ID(), got)
		}
	}
}

// TestCloseWritesPending: what the persister still holds is written by Close, and a
// failure there is reported.
func TestCloseWritesPending(t *testing.T) {
	f := newFixture(t, time.Hour)
	f.r.Start()
	f.r.Merge(orgs(2, 2))
	if err := f.r.Close(); err != nil || f.disk.get(org("o1", 2).ID()) == nil {
		t.Fatalf("Close: %v, pending records not written", err)
	}
	g := newFixture(t, time.Hour)
	g.disk.setFailing(true)
	g.r.Merge(orgs(1, 2))
	if err := g.r.Close(); err == nil {
		t.Fatal("Close hid a failed write")
	}
}
