package server

import (
	"net/netip"
	"sync"
	"time"
)

// rrl is response-rate limiting for UDP, per client prefix (an IPv4 /24, an IPv6
// /56), as Knot and BIND do it: a token bucket of Rate responses per second (burst
// Rate) per prefix; past it, every second response is sent truncated and empty (a
// real resolver retries over TCP, which a spoofed victim cannot complete) and the
// others are dropped. So a forged source gets at most Rate full answers a second
// plus small TC ones, whatever the attacker sends. It owns only that decision.
type rrl struct {
	rate float64
	now  func() time.Time

	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	over   uint64
}

// rrlMaxPrefixes bounds the table; when full it starts again (every prefix gets its
// burst once more), which a flood of forged sources could force but which costs
// no more than the burst per prefix.
const rrlMaxPrefixes = 1 << 16

type verdict int

const (
	answer verdict = iota
	slip           // a truncated, empty response
	drop
)

func newRRL(rate int, now func() time.Time) *rrl {
	if rate <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &rrl{rate: float64(rate), now: now, buckets: map[netip.Prefix]*bucket{}}
}

func rrlPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

func (r *rrl) decide(src netip.Addr) verdict {
	if r == nil {
		return answer
	}
	now := r.now()
	p := rrlPrefix(src)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[p]
	if b == nil {
		if len(r.buckets) >= rrlMaxPrefixes {
			clear(r.buckets)
		}
		b = &bucket{tokens: r.rate, last: now}
		r.buckets[p] = b
	}
	b.tokens = min(r.rate, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return answer
	}
	b.over++
	if b.over%2 == 1 {
		return slip
	}
	return drop
}
