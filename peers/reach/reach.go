// Package reach owns this host's own view of which other hosts it can reach over
// WireGuard, from nothing but its device's counters: no probes of its own and no
// gossip. DNS leaves out machines on hosts this view calls unreachable, `dogwood
// doctor` fails on them and a metric shows them.
//
// Why counters are enough: host-to-host peers keep their tunnels alive with a
// persistent keepalive (peers/wgsync.HostKeepalive, 5 s). WireGuard sends a
// keepalive whenever it has sent nothing else for that long, so a working tunnel
// always receives bytes from the other side at least that often, whatever the
// traffic; a tunnel whose receive counter stopped for three keepalives is dead. That
// sees a blocked UDP port in about 15 s, where WireGuard's own verdict (no handshake
// within reject-after, 180 s) takes minutes. A host that announces no keepalive (the
// previous release kept host tunnels alive every 25 s) gets twice that plus 5 s.
//
// Tracker is the logic, fed samples with their time (tests use a fake clock). It
// must not read devices or membership itself: the agent samples and feeds it.
package reach

import (
	"slices"
	"time"
)

// LegacyKeepalive is the host keepalive of hosts that do not announce theirs (the
// previous release).
const LegacyKeepalive = 25 * time.Second

// Sample is one host peer as the device reports it.
type Sample struct {
	Host    string
	RxBytes int64
	// Keepalive is the persistent keepalive the other host announced for its host
	// tunnels; 0 when it announced none.
	Keepalive time.Duration
}

// DeadAfter is how long a host's tunnel may receive nothing before it is dead.
func DeadAfter(keepalive time.Duration) time.Duration {
	if keepalive <= 0 {
		return 2*LegacyKeepalive + 5*time.Second
	}
	return 3 * keepalive
}

// Tracker decides which hosts are unreachable. Not safe for concurrent use.
type Tracker struct {
	peers map[string]*peer
	dead  []string // sorted
}

type peer struct {
	rx       int64
	lastRecv time.Time
	dead     bool
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
		// A counter that went down belongs to a peer set up again: bytes arrived or
		// not, start over from now.
		if s.RxBytes != p.rx {
			p.rx, p.lastRecv = s.RxBytes, now
		}
		p.dead = now.Sub(p.lastRecv) > DeadAfter(s.Keepalive)
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
