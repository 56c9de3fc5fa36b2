package clock

import (
	"testing"
	"time"
)

// TestFakeFiresOnlyWhenAdvanced: a fake timer fires once Advance reaches its
// deadline, not before, and a stopped one never fires.
func TestFakeFiresOnlyWhenAdvanced(t *testing.T) {
	f := NewFake(time.Unix(1000, 0))
	a, b := f.NewTimer(time.Second), f.NewTimer(2*time.Second)
	if n := f.WaitTimers(2); n != 2 {
		t.Fatalf("%d timers pending, want 2", n)
	}
	f.Advance(999 * time.Millisecond)
	select {
	case <-a.C():
		t.Fatal("fired before its deadline")
	default:
	}
	f.Advance(time.Millisecond)
	if got := <-a.C(); !got.Equal(time.Unix(1001, 0)) {
		t.Fatalf("fired at %v", got)
	}
	if !b.Stop() || b.Stop() {
		t.Fatal("Stop reports a pending timer once")
	}
	f.Advance(time.Hour)
	select {
	case <-b.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	if f.Pending() != 0 {
		t.Fatalf("%d timers pending", f.Pending())
	}
}

// TestSleepStops: Sleep returns false at once when stop closes.
func TestSleepStops(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	stop := make(chan struct{})
	done := make(chan bool)
	go func() { done <- Sleep(f, time.Hour, stop) }()
	f.WaitTimers(1)
	close(stop)
	if <-done {
		t.Fatal("Sleep reported the full wait after stop")
	}
	go func() { done <- Sleep(f, time.Second, nil) }()
	f.WaitTimers(1)
	f.Advance(time.Second)
	if !<-done {
		t.Fatal("Sleep did not report the full wait")
	}
}
