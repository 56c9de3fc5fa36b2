// Package reach owns this host's own view of which other hosts it can reach over
// WireGuard, from its device's receive counters and nothing else it must trust: no
// service of its own on the other side and no gossip. DNS leaves out machines on
// hosts this view calls unreachable, `dogwood doctor` fails on them and a metric
// shows them.
//
// A quiet tunnel receives nothing, so silence alone says nothing: persistent
// keepalives do not help (each side restarts its keepalive timer on what it
// receives, so on an idle tunnel one side may send them all and receive none). What
// every WireGuard, kernel or userspace and of any release, does is answer a data
// packet: a peer that received data and has sent nothing for 10 s sends a keepalive
// (KEEPALIVE_TIMEOUT). So when a tunnel has been quiet for NudgeAfter, this host
// sends one datagram into it (the agent sends it from fdaa::3, an address no host
// owns, so the other side's WireGuard drops it right after decrypting it, having
// armed that keepalive); a working tunnel then receives within about 10 s, and one
// that received nothing for DeadAfter is dead. That sees a blocked UDP port in
// 15-21 s, where WireGuard's own verdict (no handshake within reject-after, 180 s)
// takes minutes. A host whose tunnel cannot be nudged (it has no allowed IPs: no
// machines or peers, so nothing in DNS) is judged by that verdict.
//
// Tracker is the logic, fed samples with their time (tests use a fake clock). It
// must not read devices or send anything itself: the agent samples and nudges.
package reach

import (
	"slices"
	"time"
)

const (
	// NudgeAfter is how long a tunnel may be quiet before it is nudged, and how
	// often a quiet tunnel is nudged again.
	NudgeAfter = 5 * time.Second
	// DeadAfter is how long a nudged tunnel may receive nothing before it is dead:
	// the nudge waits up to NudgeAfter, the answer up to WireGuard's 10 s keepalive
	// timeout, and sampling adds a second or so.
	DeadAfter = 20 * time.Second
	// DeadAfterUnnudged is WireGuard's reject-after time plus DeadAfter: for a tunnel
	// there is no way to nudge.
	DeadAfterUnnudged = 180*time.Second + DeadAfter
)

// Sample is one host peer as the device reports it.
type Sample struct {
	Host    string
	RxBytes int64
	// Nudgeable says the tunnel has allowed IPs to send a nudge to.
	Nudgeable bool
}

// Tracker decides which hosts are unreachable and which tunnels to nudge. Not safe
// for concurrent use.
type Tracker struct {
	peers map[string]*peer
	dead  []string // sorted
}

type peer struct {
	rx        int64
	lastRecv  time.Time
	lastNudge time.Time
	nudgeable bool
	dead      bool
}

// New returns a tracker that knows no host.
func New() *Tracker { return &Tracker{peers: map[string]*peer{}} }

// Observe records one sample of every host peer (hosts missing from it are
// forgotten) and reports whether the set of unreachable hosts changed. A host seen
// for the first time counts as just heard from.
func (t *Tracker) Observe(now time.Time, samples []Sample) bool {
	seen := make(map[string]bool, len(samples))
	for _, s := range samples {
		seen[s.Host] = true
		p := t.peers[s.Host]
		if p == nil {
			p = &peer{rx: s.RxBytes, lastRecv: now}
			t.peers[s.Host] = p
		}
		// A counter that went down belongs to a peer set up again: start over.
		if s.RxBytes != p.rx {
			p.rx, p.lastRecv = s.RxBytes, now
		}
		p.nudgeable = s.Nudgeable
		limit := DeadAfterUnnudged
		if p.nudgeable {
			limit = DeadAfter
		}
		p.dead = now.Sub(p.lastRecv) > limit
	}
	for h := range t.peers {
		if !seen[h] {
			delete(t.peers, h)
		}
	}
	var dead []string
	for h, p := range t.peers {
		if p.dead {
			dead = append(dead, h)
		}
	}
	slices.Sort(dead)
	if slices.Equal(dead, t.dead) {
		return false
	}
	t.dead = dead
	return true
}

// Nudge returns the hosts whose tunnels to nudge now (quiet for NudgeAfter and not
// nudged for as long), and counts them as nudged.
func (t *Tracker) Nudge(now time.Time) []string {
	var out []string
	for h, p := range t.peers {
		if p.nudgeable && now.Sub(p.lastRecv) >= NudgeAfter && now.Sub(p.lastNudge) >= NudgeAfter {
			p.lastNudge = now
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// Unreachable returns the hosts whose tunnels are dead, sorted. The slice is the
// tracker's: do not modify it.
func (t *Tracker) Unreachable() []string { return t.dead }

// Silence is how long a host's tunnel has received nothing, as of now (-1: unknown).
func (t *Tracker) Silence(now time.Time, host string) time.Duration {
	p := t.peers[host]
	if p == nil {
		return -1
	}
	return now.Sub(p.lastRecv)
}
