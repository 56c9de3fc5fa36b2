//go:build agent

package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers"
)

// fakeCatalog is a catalog as the data plane sees it: a latest snapshot and a signal.
type fakeCatalog struct {
	latest  atomic.Pointer[catalog.Snapshot]
	changed chan struct{}
	stopped atomic.Bool
}

func newFakeCatalog() *fakeCatalog {
	c := &fakeCatalog{changed: make(chan struct{}, 1)}
	c.publish(1)
	return c
}

func (c *fakeCatalog) Latest() *catalog.Snapshot { return c.latest.Load() }

func (c *fakeCatalog) Watch() (<-chan struct{}, func()) {
	c.signal()
	return c.changed, func() { c.stopped.Store(true) }
}

// publish makes a snapshot with sequence seq the latest and signals, as the catalog
// does after a write.
func (c *fakeCatalog) publish(seq uint64) {
	s := catalog.Empty("h1")
	s.Seq = seq
	c.latest.Store(s)
	c.signal()
}

// signal wakes the watcher; signals coalesce, as the catalog's do.
func (c *fakeCatalog) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// fakeWireGuard records what the loop applied, in order with the DNS syncs, and can
// hold an apply until released.
type fakeWireGuard struct {
	mu     sync.Mutex
	events []string
	seqs   []uint64
	err    error
	dns    []netip.Addr
	hold   chan struct{} // if set, Apply waits on it
	inside chan uint64   // if set, Apply reports the seq it started with
}

func (w *fakeWireGuard) Apply(s *catalog.Snapshot) error {
	w.mu.Lock()
	inside, hold := w.inside, w.hold
	w.mu.Unlock()
	if inside != nil {
		inside <- s.Seq
	}
	if hold != nil {
		<-hold
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, "apply")
	w.seqs = append(w.seqs, s.Seq)
	return w.err
}

func (w *fakeWireGuard) DNSAddrs() []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.dns)
}

func (w *fakeWireGuard) note(e string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
}

func (w *fakeWireGuard) applied() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seqs)
}

// fakeListeners records the listener sets it was given, into the wireguard's log.
type fakeListeners struct {
	wg   *fakeWireGuard
	mu   sync.Mutex
	last []netip.AddrPort
	err  error
}

func (l *fakeListeners) SyncListeners(aps []netip.AddrPort) error {
	l.wg.note("dns")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = aps
	return l.err
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestApplyLoopAppliesThenMovesListeners(t *testing.T) {
	cat := newFakeCatalog()
	wg := &fakeWireGuard{dns: []netip.Addr{netip.MustParseAddr("fdaa::3"), netip.MustParseAddr("fdaa:0:7::3")}}
	dns := &fakeListeners{wg: wg}
	l := newApplyLoop(cat, wg, quietLog(), time.Hour)
	defer l.stop()

	l.run(dns)
	// run returns after its first pass: WireGuard first, then the listeners on the
	// addresses it put up, on port 53.
	if got := wg.applied(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("applied after run = %v, want [1]", got)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("[fdaa::3]:53"), netip.MustParseAddrPort("[fdaa:0:7::3]:53")}
	dns.mu.Lock()
	got := dns.last
	dns.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("listeners = %v, want %v", got, want)
	}

	// A change is applied by the loop, from the latest snapshot.
	cat.publish(2)
	cat.publish(3)
	waitFor(t, "snapshot 3 applied", func() bool { return slices.Contains(wg.applied(), 3) })
	wg.mu.Lock()
	events := slices.Clone(wg.events)
	wg.mu.Unlock()
	for i, e := range events {
		if want := []string{"apply", "dns"}[i%2]; e != want {
			t.Fatalf("events = %v: every apply must be followed by its listener sync", events)
		}
	}
}

func TestApplyLoopInstallWaitsForALaterPass(t *testing.T) {
	cat := newFakeCatalog()
	wg := &fakeWireGuard{}
	l := newApplyLoop(cat, wg, quietLog(), time.Hour)
	defer l.stop()

	// Before the loop runs (the node is still starting) an operation does not wait.
	if err := l.install(context.Background()); err != nil {
		t.Fatalf("install before run = %v, want nil", err)
	}
	if got := wg.applied(); len(got) != 0 {
		t.Fatalf("install before run applied %v", got)
	}
	l.run(&fakeListeners{wg: wg})
	waitFor(t, "the watch's first signal applied", func() bool { return len(wg.applied()) >= 2 })

	// Hold a pass that started with snapshot 1; an operation that recorded snapshot 2
	// meanwhile must get a pass that starts after it, not the one in progress.
	hold := make(chan struct{})
	var release sync.Once
	defer release.Do(func() { close(hold) }) // before l.stop, whatever fails
	wg.mu.Lock()
	wg.hold, wg.inside = hold, make(chan uint64, 8)
	wg.mu.Unlock()
	cat.signal()
	if seq := <-wg.inside; seq != 1 {
		t.Fatalf("held pass started with %d, want 1", seq)
	}
	cat.publish(2)
	done := make(chan []uint64, 1)
	go func() {
		if err := l.install(context.Background()); err != nil {
			t.Errorf("install = %v", err)
		}
		done <- wg.applied()
	}()
	time.Sleep(20 * time.Millisecond) // let install queue behind the held pass
	wg.hold <- struct{}{}
	for seq := range wg.inside {
		if seq == 2 {
			break
		}
		wg.hold <- struct{}{}
	}
	// Snapshot 2's pass is held: an install answered by the earlier pass has
	// returned by now.
	select {
	case got := <-done:
		t.Fatalf("install returned before snapshot 2 was applied: %v", got)
	case <-time.After(20 * time.Millisecond):
	}
	release.Do(func() { close(hold) })
	if got := <-done; !slices.Contains(got, 2) {
		t.Fatalf("install returned before snapshot 2 was applied: %v", got)
	}
}

func TestApplyLoopInstallReportsApplyErrors(t *testing.T) {
	cat := newFakeCatalog()
	boom := errors.New("boom")
	wg := &fakeWireGuard{err: &peers.StageError{Stage: "filter", Err: boom}}
	dns := &fakeListeners{wg: wg, err: errors.New("listener busy")}
	l := newApplyLoop(cat, wg, quietLog(), time.Hour)
	l.run(dns)
	if err := l.lastErr(); !errors.Is(err, boom) {
		t.Fatalf("lastErr = %v, want the apply's", err)
	}
	// An apply error reaches the operation (a DNS listener failure does not); the
	// data plane narrows it to the object.
	d := &dataPlane{loop: l}
	err := d.Installed(context.Background(), catalog.ID{Kind: catalog.KindMachine, Key: "m1"})
	if !errors.Is(err, boom) {
		t.Fatalf("Installed = %v, want the filter stage's error", err)
	}
	wg.mu.Lock()
	wg.err = nil
	wg.mu.Unlock()
	if err := d.Installed(context.Background(), catalog.ID{Kind: catalog.KindMachine, Key: "m1"}); err != nil {
		t.Fatalf("Installed after a clean apply = %v", err)
	}
	if err := l.lastErr(); err != nil {
		t.Fatalf("lastErr after a clean apply = %v", err)
	}

	// Once stopped, an operation is told so and nothing hangs.
	l.stop()
	if !cat.stopped.Load() {
		t.Fatal("the loop left its catalog watch open")
	}
	if err := l.install(context.Background()); !errors.Is(err, errLoopStopped) {
		t.Fatalf("install after stop = %v, want errLoopStopped", err)
	}
}

func TestApplyLoopInstallGivesUpWithItsContext(t *testing.T) {
	cat := newFakeCatalog()
	wg := &fakeWireGuard{}
	l := newApplyLoop(cat, wg, quietLog(), time.Hour)
	l.run(&fakeListeners{wg: wg})
	waitFor(t, "first loop pass", func() bool { return len(wg.applied()) >= 2 })
	wg.mu.Lock()
	wg.hold = make(chan struct{})
	wg.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.install(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("install with a stuck apply = %v, want the deadline", err)
	}
	close(wg.hold) // the loop answers into a buffer nobody reads, and goes on
	l.stop()
}
