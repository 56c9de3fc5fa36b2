// Package health owns the health checks of one host's machines: when each check runs,
// what its results add up to (rise and fall damp flapping), and the transitions the
// host must write to the catalog. Engine is the logic with no I/O and no clock of its
// own (tests drive it with a fake clock); Runner runs an Engine with real time and a
// Prober; NetProber checks from the host into the machine (http checks keep a
// connection, and so a file descriptor, per machine and port between probes).
//
// It does not write the catalog or read it: the agent hands it the machines to check
// and receives transitions, and writes those through the catalog like any record the
// host owns. Nothing here runs per interval beyond the probes themselves.
package health

import (
	"container/heap"
	"hash/fnv"
	"net/netip"
	"slices"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Target is a machine to check: a started machine of this host with checks.
type Target struct {
	ID   string
	Addr netip.Addr
	// Checks are the machine's checks as the catalog holds them; their Status is
	// where a restarted agent resumes from (no transition for what it already wrote).
	Checks []catalog.Check
}

// Probe is one check to run now.
type Probe struct {
	Machine string
	Index   int
	Kind    string
	Addr    netip.AddrPort
	Path    string
	Timeout time.Duration
	// seq ties a result to this run: a result for a check replaced meanwhile is dropped.
	seq uint64
	// conn is the http check's connection kept between probes (nil: a fresh
	// connection per probe); Runner sets it.
	conn *keptConn
}

// Transition is a change of one machine's check statuses that the host writes.
type Transition struct {
	Machine string
	// Checks are the machine's checks with their statuses, outputs and times now.
	Checks []catalog.Check
	// From and To are the machine's health before and after.
	From, To string
}

// Engine decides when checks run and what their results mean. Not safe for
// concurrent use (Runner serializes it).
type Engine struct {
	machines map[string]*machine
	queue    checkQueue
	seq      uint64
}

type machine struct {
	id     string
	addr   netip.Addr
	cfg    []catalog.Check
	checks []*check
}

type check struct {
	m        *machine
	index    int
	cfg      catalog.Check
	port     uint16
	path     string
	interval time.Duration
	timeout  time.Duration
	rise     int
	fall     int

	next     time.Time
	inflight uint64 // seq of the run in flight, 0 when none
	heapIdx  int

	status    string
	passes    int
	fails     int
	output    string
	checkedAt time.Time
}

// NewEngine returns an engine with nothing to check.
func NewEngine() *Engine { return &Engine{machines: map[string]*machine{}} }

// Set makes targets the machines to check. A machine whose checks and address are
// unchanged keeps its state and schedule; a new one runs its first check within one
// interval, at an offset derived from its id, so checks spread over the interval.
func (e *Engine) Set(now time.Time, targets []Target) {
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		seen[t.ID] = true
		if m := e.machines[t.ID]; m != nil {
			if m.addr == t.Addr && slices.EqualFunc(m.cfg, t.Checks, func(a, b catalog.Check) bool { return a.Config() == b.Config() }) {
				continue
			}
			e.remove(m)
		}
		e.add(now, t)
	}
	for id, m := range e.machines {
		if !seen[id] {
			e.remove(m)
		}
	}
}

func (e *Engine) add(now time.Time, t Target) {
	m := &machine{id: t.ID, addr: t.Addr}
	for i, c := range t.Checks {
		m.cfg = append(m.cfg, c.Config())
		port, path, err := c.Port()
		if err != nil {
			continue // refused at create; a foreign record is not ours to run
		}
		ch := &check{m: m, index: i, cfg: c.Config(), port: port, path: path, status: c.Status, output: c.Output}
		if ch.status != catalog.HealthPassing && ch.status != catalog.HealthCritical {
			ch.status = catalog.HealthUnknown
		}
		if c.CheckedAt != nil {
			ch.checkedAt = *c.CheckedAt
		}
		ch.interval, ch.timeout, ch.rise, ch.fall = c.Every()
		ch.next = now.Add(offset(t.ID, i, ch.interval))
		m.checks = append(m.checks, ch)
		heap.Push(&e.queue, ch)
	}
	e.machines[t.ID] = m
}

func (e *Engine) remove(m *machine) {
	for _, c := range m.checks {
		if c.heapIdx >= 0 {
			heap.Remove(&e.queue, c.heapIdx)
		}
	}
	delete(e.machines, m.id)
}

// offset spreads first runs over the interval, the same for a machine each time.
func offset(id string, i int, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{byte(i)})
	return time.Duration(h.Sum64() % uint64(interval))
}

// Next is when the next check is due (zero: nothing to check).
func (e *Engine) Next() time.Time {
	if len(e.queue) == 0 {
		return time.Time{}
	}
	return e.queue[0].next
}

// Due returns the checks to run now and schedules their next runs. A check whose
// last run has not answered yet is skipped this time (its timeout is below the
// interval, so that takes a stuck prober).
func (e *Engine) Due(now time.Time, out []Probe) []Probe {
	for len(e.queue) > 0 && !e.queue[0].next.After(now) {
		c := e.queue[0]
		// Keep the cadence, but never schedule into the past after a stall.
		c.next = c.next.Add(c.interval)
		if c.next.Before(now) {
			c.next = now.Add(c.interval)
		}
		heap.Fix(&e.queue, 0)
		if c.inflight != 0 {
			continue
		}
		e.seq++
		c.inflight = e.seq
		out = append(out, Probe{Machine: c.m.id, Index: c.index, Kind: c.cfg.Kind, Addr: netip.AddrPortFrom(c.m.addr, c.port),
			Path: c.path, Timeout: c.timeout, seq: e.seq})
	}
	return out
}

// Result records a probe's outcome; it returns the machine's transition when a
// check's status changed.
func (e *Engine) Result(now time.Time, p Probe, pass bool, output string) (Transition, bool) {
	m := e.machines[p.Machine]
	if m == nil || p.Index >= len(m.cfg) {
		return Transition{}, false
	}
	var c *check
	for _, x := range m.checks {
		if x.index == p.Index {
			c = x
		}
	}
	if c == nil || c.inflight != p.seq {
		return Transition{}, false
	}
	c.inflight = 0
	from := m.health()
	c.output, c.checkedAt = output, now
	if !c.observe(pass) {
		return Transition{}, false
	}
	return Transition{Machine: m.id, Checks: m.view(), From: from, To: m.health()}, true
}

// observe counts a result and reports whether the status changed. The first result
// decides an unknown check; after that, rise passes in a row make it passing and
// fall failures in a row make it critical.
func (c *check) observe(pass bool) bool {
	if pass {
		c.passes, c.fails = c.passes+1, 0
		if c.status != catalog.HealthPassing && (c.status == catalog.HealthUnknown || c.passes >= c.rise) {
			c.status = catalog.HealthPassing
			return true
		}
		return false
	}
	c.fails, c.passes = c.fails+1, 0
	if c.status != catalog.HealthCritical && (c.status == catalog.HealthUnknown || c.fails >= c.fall) {
		c.status = catalog.HealthCritical
		return true
	}
	return false
}

// health adds the checks' statuses up as catalog.AggregateHealth does, without
// building the view (it runs for every result).
func (m *machine) health() string {
	if len(m.cfg) == 0 {
		return ""
	}
	all := len(m.checks) == len(m.cfg)
	for _, c := range m.checks {
		switch c.status {
		case catalog.HealthCritical:
			return catalog.HealthCritical
		case catalog.HealthPassing:
		default:
			all = false
		}
	}
	if all {
		return catalog.HealthPassing
	}
	return catalog.HealthUnknown
}

// view is the machine's checks with their current statuses.
func (m *machine) view() []catalog.Check {
	out := slices.Clone(m.cfg)
	for _, c := range m.checks {
		out[c.index].Status, out[c.index].Output = c.status, c.output
		if !c.checkedAt.IsZero() {
			t := c.checkedAt.UTC()
			out[c.index].CheckedAt = &t
		}
	}
	for i := range out {
		if out[i].Status == "" {
			out[i].Status = catalog.HealthUnknown
		}
	}
	return out
}

// Live returns a machine's checks with their latest results (nil if not checked here).
func (e *Engine) Live(id string) []catalog.Check {
	if m := e.machines[id]; m != nil {
		return m.view()
	}
	return nil
}

// Counts returns how many checked machines are in each health state.
func (e *Engine) Counts() map[string]int {
	out := map[string]int{catalog.HealthPassing: 0, catalog.HealthCritical: 0, catalog.HealthUnknown: 0}
	for _, m := range e.machines {
		out[m.health()]++
	}
	return out
}

// Len is the number of checks scheduled.
func (e *Engine) Len() int { return len(e.queue) }

// checkQueue is a min-heap of checks by next run.
type checkQueue []*check

func (q checkQueue) Len() int           { return len(q) }
func (q checkQueue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q checkQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].heapIdx, q[j].heapIdx = i, j
}
func (q *checkQueue) Push(x any) {
	c := x.(*check)
	c.heapIdx = len(*q)
	*q = append(*q, c)
}
func (q *checkQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.heapIdx = -1
	*q = old[:len(old)-1]
	return c
}
