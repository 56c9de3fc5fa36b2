// Package quorum owns asking a small set of hosts the same question and deciding on
// a majority of their answers: it returns as soon as a majority said yes (or a
// majority can no longer say yes), leaves the stragglers to finish in the
// background, and remembers hosts that were slow or did not answer so that later
// polls ask the others first and only turn to them when a majority needs them. So
// one slow or unreachable host costs at most one RPC timeout, on the first poll
// that meets it, and none while enough others answer.
//
// It knows nothing of names, grants or records: the caller supplies the question
// (ask) and what counts as yes. It does no I/O of its own.
package quorum

import (
	"context"
	"sync"
	"time"
)

// Need is the number of yes answers that makes a majority of n: two majorities of
// one set always share a member.
func Need(n int) int { return n/2 + 1 }

// Slow remembers hosts that answered slowly or not at all, for a while.
type Slow struct {
	ttl   time.Duration
	after time.Duration
	now   func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
}

// NewSlow remembers a host for ttl after an answer that took longer than after
// or failed; a quick answer forgets it at once.
func NewSlow(ttl, after time.Duration, now func() time.Time) *Slow {
	if now == nil {
		now = time.Now
	}
	return &Slow{ttl: ttl, after: after, now: now, until: map[string]time.Time{}}
}

// Observe records how one answer went.
func (s *Slow) Observe(host string, took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || took > s.after {
		s.until[host] = s.now().Add(s.ttl)
		return
	}
	delete(s.until, host)
}

// Is reports whether host is remembered as slow.
func (s *Slow) Is(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.until[host]
	if ok && !s.now().Before(u) {
		delete(s.until, host)
		return false
	}
	return ok
}

// Result is one host's answer.
type Result[T any] struct {
	Host  string
	Value T
	Err   error
}

// Poll asks every host (concurrently) with ask and returns the answers it has once
// need of them are yes, once need can no longer be reached, once all answered or
// when ctx is done. Hosts slow remembers as slow are asked only when the others
// can no longer make need by themselves. Each ask gets its own context (bounded by
// timeout, not cancelled with ctx), so an answer that arrives after Poll returned
// still teaches slow, and is handed to late (if not nil, on a goroutine of its
// own) for the caller to undo what it no longer wants.
func Poll[T any](ctx context.Context, hosts []string, need int, slow *Slow, timeout time.Duration,
	ask func(ctx context.Context, host string) (T, error), yes func(T, error) bool, late func(Result[T])) []Result[T] {
	var fast, slowHosts []string
	for _, h := range hosts {
		if slow != nil && slow.Is(h) {
			slowHosts = append(slowHosts, h)
		} else {
			fast = append(fast, h)
		}
	}
	ch := make(chan Result[T], len(hosts))
	var mu sync.Mutex
	returned := false
	launch := func(h string) {
		go func() {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			defer cancel()
			start := time.Now()
			v, err := ask(actx, h)
			if slow != nil {
				slow.Observe(h, time.Since(start), err)
			}
			r := Result[T]{Host: h, Value: v, Err: err}
			mu.Lock()
			if !returned {
				ch <- r // buffered for every host: never blocks
				mu.Unlock()
				return
			}
			mu.Unlock()
			if late != nil {
				late(r)
			}
		}()
	}
	for _, h := range fast {
		launch(h)
	}
	outstanding, yesN, noN := len(fast), 0, 0
	reserve := slowHosts
	var out []Result[T]
	finish := func() []Result[T] {
		mu.Lock()
		returned = true
		var queued []Result[T]
		for len(ch) > 0 {
			queued = append(queued, <-ch)
		}
		mu.Unlock()
		// Answers already queued were never seen by the caller: they are late too.
		if late != nil {
			for _, r := range queued {
				go late(r) // late may wait for the caller's decision, made after we return
			}
		}
		return out
	}
	for {
		if yesN >= need || len(hosts)-noN < need {
			return finish()
		}
		// The fast hosts cannot make it alone: ask the slow ones too.
		if len(reserve) > 0 && yesN+outstanding < need {
			for _, h := range reserve {
				launch(h)
			}
			outstanding += len(reserve)
			reserve = nil
		}
		if outstanding == 0 {
			return finish()
		}
		select {
		case r := <-ch:
			outstanding--
			out = append(out, r)
			if yes(r.Value, r.Err) {
				yesN++
			} else {
				noN++
			}
		case <-ctx.Done():
			return finish()
		}
	}
}
