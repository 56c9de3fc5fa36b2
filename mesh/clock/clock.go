// Package clock owns the time the core's background loops wait on (the persister's
// window, tombstone collection, the identity check), so a test can drive those timers
// instead of sleeping through them. Real is the wall clock; Fake moves only when a
// test advances it.
//
// It knows nothing of what is timed and must not grow scheduling of its own: a loop
// asks for one timer at a time and decides what to do when it fires.
package clock

import "time"

// Clock is the time a loop reads and waits on. Implementations are safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer fires once on C. Stop releases it if it has not fired (then C never fires).
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Real is the wall clock.
func Real() Clock { return real{} }

type real struct{}

func (real) Now() time.Time                 { return time.Now() }
func (real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Sleep waits d on c, or returns false as soon as stop closes.
func Sleep(c Clock, d time.Duration, stop <-chan struct{}) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-stop:
		return false
	}
}
