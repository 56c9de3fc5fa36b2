package quorum

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNeed(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := Need(n); got != want {
			t.Errorf("Need(%d) = %d, want %d", n, got, want)
		}
		// Two sets of Need(n) among n always share a member.
		if 2*Need(n) <= n {
			t.Errorf("two majorities of %d (%d each) can be disjoint", n, Need(n))
		}
	}
}

type fakeHosts struct {
	mu    sync.Mutex
	asked map[string]int
	hang  map[string]bool // answer only when the ask's context ends
	no    map[string]bool
}

func (f *fakeHosts) ask(ctx context.Context, h string) (bool, error) {
	f.mu.Lock()
	f.asked[h]++
	hang, no := f.hang[h], f.no[h]
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return !no, nil
}

func (f *fakeHosts) count(h string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[h]
}

func yes(v bool, err error) bool { return err == nil && v }

func countYes(rs []Result[bool]) int {
	n := 0
	for _, r := range rs {
		if yes(r.Value, r.Err) {
			n++
		}
	}
	return n
}

// TestPollReturnsAtMajority: with one host that never answers, a poll of five
// returns as soon as three said yes, without waiting for the fourth's timeout; the
// silent host's failure reaches late, and the next poll does not ask it at all.
func TestPollReturnsAtMajority(t *testing.T) {
	f := &fakeHosts{asked: map[string]int{}, hang: map[string]bool{"e": true}}
	slow := NewSlow(time.Minute, 100*time.Millisecond, nil)
	hosts := []string{"a", "b", "c", "d", "e"}
	var lateN atomic.Int32
	lateDone := make(chan struct{}, 8)
	late := func(r Result[bool]) { lateN.Add(1); lateDone <- struct{}{} }
	start := time.Now()
	rs := Poll(context.Background(), hosts, Need(5), slow, 2*time.Second, f.ask, yes, late)
	if took := time.Since(start); took > time.Second {
		t.Errorf("first poll took %v with one silent host: it waited for it", took)
	}
	if countYes(rs) < 3 {
		t.Fatalf("poll returned %d yes", countYes(rs))
	}
	// The silent host times out in the background and is remembered.
	for !slow.Is("e") {
		select {
		case <-lateDone:
		case <-time.After(5 * time.Second):
			t.Fatal("the silent host's timeout never reached late / slow")
		}
	}
	for i := 0; i < 20; i++ {
		start := time.Now()
		rs := Poll(context.Background(), hosts, Need(5), slow, 2*time.Second, f.ask, yes, late)
		if countYes(rs) < 3 || time.Since(start) > time.Second {
			t.Fatalf("poll %d: %d yes in %v", i, countYes(rs), time.Since(start))
		}
	}
	if n := f.count("e"); n != 1 {
		t.Errorf("the silent host was asked %d times in 21 polls; once is enough", n)
	}
}

// TestPollAsksSlowHostsWhenNeeded: a remembered slow host is asked as soon as the
// others cannot make a majority without it.
func TestPollAsksSlowHostsWhenNeeded(t *testing.T) {
	f := &fakeHosts{asked: map[string]int{}, no: map[string]bool{"b": true}}
	slow := NewSlow(time.Minute, 100*time.Millisecond, nil)
	slow.Observe("c", 0, errors.New("timeout"))
	rs := Poll(context.Background(), []string{"a", "b", "c"}, 2, slow, time.Second, f.ask, yes, nil)
	if countYes(rs) != 2 || f.count("c") != 1 {
		t.Fatalf("%d yes, c asked %d times", countYes(rs), f.count("c"))
	}
	if slow.Is("c") {
		t.Error("a quick answer did not clear c's slow mark")
	}
}

// TestPollStopsWhenMajorityImpossible: with three of five saying no, the poll
// ends with fewer than a majority of yes (and does not wait for a silent host).
func TestPollStopsWhenMajorityImpossible(t *testing.T) {
	f := &fakeHosts{asked: map[string]int{}, no: map[string]bool{"a": true, "b": true, "c": true}, hang: map[string]bool{"e": true}}
	start := time.Now()
	rs := Poll(context.Background(), []string{"a", "b", "c", "d", "e"}, Need(5), nil, 3*time.Second, f.ask, yes, nil)
	if countYes(rs) >= Need(5) {
		t.Fatalf("%d yes out of a 2-yes, 3-no vote", countYes(rs))
	}
	if time.Since(start) > time.Second {
		t.Errorf("waited %v for a silent host after the majority was lost", time.Since(start))
	}
}
