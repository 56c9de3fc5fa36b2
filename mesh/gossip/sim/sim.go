// Package sim owns Dogwood's deterministic dissemination simulator: thousands of
// hosts in one goroutine, in virtual time, with no sockets and no sleeps. Each host
// runs the real protocol code of mesh/gossip/proto (the broadcast tree and the
// anti-entropy exchange) over its own real *catalog.Catalog; the simulator only
// replaces the network (per-message latency, loss, partitions), membership (an
// oracle that tells hosts about failures after a detection delay) and the clock.
// The same seed gives the same run.
//
// It measures what the targets are stated in: propagation delay of each
// change to each host (p50/p99), messages and bytes each host sends per second
// (while changes flow, and idle), and how long the fleet takes to converge after a
// partition heals.
package sim

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip/proto"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Config is one simulated run. Zero values take the defaults noted.
type Config struct {
	Hosts int
	Seed  int64
	// LatencyMin/Max bound the one-way delay of each message, drawn uniformly
	// (default 1ms..100ms).
	LatencyMin, LatencyMax time.Duration
	// Loss is the probability that a datagram is lost (messages that go over TCP
	// in the real system, larger than a packet, are never lost but take 1.5x).
	Loss float64
	// Rate is changes per second, fleet-wide, each made on a random live host.
	Rate float64
	// Changes is how many changes are made (at Rate).
	Changes int
	// Warmup is a stretch of changes at Rate before the measured ones, neither
	// timed nor counted: a fleet's tree has long settled when a change is made, so
	// the figures are for a tree shaped by traffic, not the initial full mesh.
	Warmup time.Duration
	// Idle is a window with no changes, measured after the changes settle, for the
	// idle cost (default 0: not measured).
	Idle time.Duration
	// Settle is how long the run continues after the last change (default 10s).
	Settle time.Duration
	// AEInterval is each host's anti-entropy period (default 1s, as the agent).
	AEInterval time.Duration
	// Detect is how long membership takes to tell others a host failed (default 5s,
	// memberlist's LAN timings) or came back (default 1s).
	Detect, Rejoin time.Duration
	// Degree is the tree's neighbor count (default the agent's); GraftTimeout and
	// LazyInterval tune the tree (default proto's).
	Degree                     int
	GraftTimeout, LazyInterval time.Duration
	EagerInterval              time.Duration
	// Compact runs the tree with its compact messages (proto.TreeConfig.Compact).
	Compact bool
	// TimingTree shapes the tree from message timing (Plumtree's prunes and grafts)
	// instead of laying it out from membership (proto.Ring, as the agent does).
	TimingTree bool
	// Fanout is the ring layout's fanout (default proto.RingFanout).
	Fanout int
	// Partition cuts PartitionFraction of the hosts off from the rest from
	// PartitionAt (after the first change) for PartitionFor.
	PartitionFraction         float64
	PartitionAt, PartitionFor time.Duration
	// Churn: every ChurnEvery, one random host fails for ChurnDown, then returns.
	ChurnEvery, ChurnDown time.Duration
	// Health makes the measured changes health transitions instead of creates: the
	// warm-up creates machines with a passing check, and each measured change is a
	// machine's host writing it critical (a new version of its record, health and
	// checks riding in it as the agent writes them).
	Health bool
}

func (c *Config) defaults() {
	if c.LatencyMax == 0 {
		c.LatencyMin, c.LatencyMax = time.Millisecond, 100*time.Millisecond
	}
	if c.Settle == 0 {
		c.Settle = 10 * time.Second
	}
	if c.AEInterval == 0 {
		c.AEInterval = time.Second
	}
	if c.Detect == 0 {
		c.Detect = 5 * time.Second
	}
	if c.Rejoin == 0 {
		c.Rejoin = time.Second
	}
	if c.Degree == 0 {
		c.Degree = 2 // gossip.TreeDegree
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
}

// Result is what a run measured.
type Result struct {
	Hosts, Changes int
	// Per (change, host) propagation delay, for hosts that were up and on the
	// source's side of any partition when the change was made.
	P50, P99, Max time.Duration
	// Every-host delay per change: until the last such host had it.
	EveryP50, EveryP99 time.Duration
	// Samples is the number of (change, host) pairs; Late those that arrived only
	// through anti-entropy or after a heal (included above).
	Samples, Late int
	// Missing (change, host) pairs never delivered by the end of the run.
	Missing int
	// Traffic per host per second while changes flowed (from the first change to
	// the last one's arrival everywhere), split by protocol.
	MsgsPerHostSec, BytesPerHostSec        float64
	TreeBytesPerHostSec, AEBytesPerHostSec float64
	// Idle traffic per host per second (only when Config.Idle > 0).
	IdleMsgsPerHostSec, IdleBytesPerHostSec float64
	// HealConverged is how long after the partition healed every live host had
	// the same catalog (0 when no partition).
	HealConverged time.Duration
	// Converged reports whether all live hosts ended with identical catalogs.
	Converged bool
	// MaxHostMsgs is the most messages any one host sent per change made: bounded
	// by the tree's degree, not by the fleet size.
	MaxHostMsgs                float64
	Grafts, Prunes, Duplicates uint64
	GraftIDs, Answered         uint64
	// Copies is payload copies a host received per change it delivered (1 is a
	// perfect tree; the rest are duplicates).
	Copies float64
	// EagerLinks is eager link ends per host at the end of the changes (just
	// under 2 for a spanning tree; more means cycles, which deliver duplicates).
	EagerLinks float64
	// PerChange splits the bytes each host sent per change while changes flowed,
	// packet overhead included: tree payload copies, announcements, grafts, prunes
	// and joins, anti-entropy.
	PerChange Split
	// Steady is PerChange counted over the changes' own stretch only (see
	// simulator.steady): the cost per change of a steady stream at Rate.
	Steady Split
	// RecordBytes is the mean encoded size of a change's payload (its records), what
	// PerChange.Total is compared with.
	RecordBytes float64
	Events      int

	window time.Duration // what the traffic figures are averaged over
	rate   float64
}

// Split is bytes per change per host by what carried them. Packets is the part of
// those bytes that is per-packet overhead (seal, encryption, IP and UDP headers).
type Split struct {
	Gossip, IHave, Control, AE, Packets float64
}

// Total is every byte a host sent per change; as every message sent is received by
// one host, it is also what a host receives per change on average.
func (p Split) Total() float64 { return p.Gossip + p.IHave + p.Control + p.AE }

func (p Split) String() string {
	return fmt.Sprintf("gossip %.0f ihave %.0f control %.0f ae %.0f (of which packet overhead %.0f)", p.Gossip, p.IHave, p.Control, p.AE, p.Packets)
}

func (r Result) String() string {
	s := fmt.Sprintf("hosts=%d changes=%d: per-host p50=%s p99=%s max=%s; every-host p50=%s p99=%s; late=%d/%d missing=%d; "+
		"per host %.1f msgs/s %.0f B/s (tree %.0f B/s, anti-entropy %.0f B/s); busiest host %.1f msgs per change; grafts=%d prunes=%d duplicates=%d; converged=%v",
		r.Hosts, r.Changes, ms(r.P50), ms(r.P99), ms(r.Max), ms(r.EveryP50), ms(r.EveryP99), r.Late, r.Samples, r.Missing,
		r.MsgsPerHostSec, r.BytesPerHostSec, r.TreeBytesPerHostSec, r.AEBytesPerHostSec, r.MaxHostMsgs, r.Grafts, r.Prunes, r.Duplicates, r.Converged)
	if r.IdleBytesPerHostSec > 0 || r.IdleMsgsPerHostSec > 0 {
		s += fmt.Sprintf("; idle %.2f msgs/s %.1f B/s per host", r.IdleMsgsPerHostSec, r.IdleBytesPerHostSec)
		// Steady state at a given rate: the idle cost plus, per change, what the
		// run cost beyond idle.
		perChange := (r.BytesPerHostSec - r.IdleBytesPerHostSec) * r.window.Seconds() / float64(max(1, r.Changes))
		s += fmt.Sprintf("; per change %.0f B per host, so %.1f KB/s per host at %.0f changes/s", perChange,
			(r.IdleBytesPerHostSec+perChange*r.rate)/1000, r.rate)
	}
	s += fmt.Sprintf("; eager links per host %.2f; graft ids %d answered %d", r.EagerLinks, r.GraftIDs, r.Answered)
	s += fmt.Sprintf("; copies per host per change %.2f; bytes per change per host: %s", r.Copies, r.PerChange)
	s += fmt.Sprintf("; steady stream: %s; received per host per change %.0f B for a %.0f B record (%.2fx; whole window with the warm-up's tail %.0f B, %.2fx)",
		r.Steady, r.Steady.Total(), r.RecordBytes, r.Steady.Total()/max(1, r.RecordBytes), r.PerChange.Total(), r.PerChange.Total()/max(1, r.RecordBytes))
	if r.HealConverged > 0 {
		s += fmt.Sprintf("; converged %s after heal", ms(r.HealConverged))
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }

// Wire overheads the real system adds to each message: our type byte and sender
// frame are counted in the message sizes; the replay seal adds 25 bytes (tag, time,
// nonce), memberlist its message type and AES-GCM (1 version + 12 nonce + 16 tag
// bytes), IP+UDP 28.
const (
	packetOverhead = 25 + 1 + 29 + 28
	udpLimit       = 1100 // larger messages go over TCP (gossip.bestEffortLimit)
)

type host struct {
	name   string
	idx    int
	cat    *catalog.Catalog
	tree   *proto.Tree
	ae     *proto.AntiEntropy
	up     bool
	listed bool // membership has it alive
	side   int  // partition side
	was    int  // partition side before the heal
	sent   int  // messages sent while measuring
	tickAt time.Time
	own    []*catalog.Record // machines it made in the warm-up (Config.Health)
}

type evKind uint8

const (
	evDeliverTree evKind = iota
	evDeliverAE
	evTick
	evAE
	evChange
	evFail
	evReturn
	evDetectFail
	evDetectReturn
	evPartition
	evHeal
	evHealDetect
	evCheck
	evMeasure
	evSteadyEnd
)

type event struct {
	at   time.Time
	seq  uint64
	kind evKind
	to   int
	from int
	tree proto.Message
	ae   any
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type change struct {
	id     catalog.ID
	ver    catalog.Stamp // the change's version: an older one arriving late is not it
	at     time.Time
	src    int
	want   []bool // hosts that should receive it (up, same side)
	got    int
	last   time.Time
	wanted int
}

type simulator struct {
	cfg     Config
	rng     *rand.Rand
	now     time.Time
	start   time.Time
	q       queue
	seq     uint64
	hosts   []*host
	byName  map[string]int
	records map[*byte][]*catalog.Record
	changes map[catalog.ID]*change
	order   []*change
	delays  []time.Duration
	late    int
	// payloadBytes sums the measured changes' payload sizes.
	payloadBytes int

	measuring   bool
	msgs, bytes float64
	split       Split
	// steady counts from the first measured change to the last one: changes flow
	// at Rate before and during it, so the traffic of earlier changes still on
	// their way when it opens stands for that of the measured ones still on their
	// way when it closes, and bytes in it per change made in it is the steady
	// cost of a change (what a host pays per change at Rate, without the warm-up's
	// tail that the whole window counts on top).
	steady        bool
	steadySplit   Split
	partitioned   bool
	cut           bool // membership on each side has dropped the other
	depth         int  // the ring's depth (graftWait)
	healedAt      time.Time
	healConverged time.Duration
	events        int
}

// Run simulates cfg and returns what it measured.
func Run(cfg Config) Result {
	cfg.defaults()
	s := &simulator{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)), byName: map[string]int{},
		records: map[*byte][]*catalog.Record{}, changes: map[catalog.ID]*change{}}
	s.now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.start = s.now
	names := make([]string, cfg.Hosts)
	for i := 0; i < cfg.Hosts; i++ {
		name := fmt.Sprintf("h%05d", i)
		names[i] = name
		c := catalog.New(name)
		c.SetSelfID(uint32(i + 1))
		h := &host{name: name, idx: i, cat: c, up: true, listed: true,
			tree: proto.NewTree(proto.TreeConfig{Self: name, GraftWait: s.graftWait, Degree: cfg.Degree, GraftTimeout: cfg.GraftTimeout, LazyInterval: cfg.LazyInterval, EagerInterval: cfg.EagerInterval, Compact: cfg.Compact, Seed: cfg.Seed*1_000_003 + int64(i)}),
			ae:   proto.NewAntiEntropy(c, 0)}
		s.hosts = append(s.hosts, h)
		s.byName[name] = i
	}
	// Every host starts with the org, network and app the changes go into.
	parents := parentRecords()
	for _, h := range s.hosts {
		h.cat.ApplyAll(parents)
	}
	// Neighbors from membership: each host is offered a random sample of members.
	s.relayout()
	for _, h := range s.hosts {
		s.refill(h)
	}
	for _, h := range s.hosts {
		s.at(time.Duration(s.rng.Int63n(int64(cfg.AEInterval))), &event{kind: evAE, to: h.idx})
	}
	// Changes start after the tree had a second to form from the Join messages.
	gap := time.Duration(float64(time.Second) / cfg.Rate)
	warm := int(cfg.Warmup.Seconds() * cfg.Rate)
	first := time.Second + time.Duration(warm)*gap
	for i := -warm; i < cfg.Changes; i++ {
		s.at(first+time.Duration(i)*gap, &event{kind: evChange, from: i})
	}
	s.at(first, &event{kind: evMeasure})
	lastChange := first + time.Duration(cfg.Changes)*gap
	s.at(lastChange, &event{kind: evSteadyEnd})
	end := lastChange + cfg.Settle
	if cfg.PartitionFraction > 0 {
		s.at(first+cfg.PartitionAt, &event{kind: evPartition})
		s.at(first+cfg.PartitionAt+cfg.PartitionFor, &event{kind: evHeal})
		end = max(end, first+cfg.PartitionAt+cfg.PartitionFor+cfg.Settle)
	}
	if cfg.ChurnEvery > 0 {
		for t := first + cfg.ChurnEvery; t < lastChange; t += cfg.ChurnEvery {
			s.at(t, &event{kind: evFail, to: s.rng.Intn(cfg.Hosts)})
		}
	}
	s.at(first, &event{kind: evCheck})
	measureFrom := s.start.Add(first)
	var measureTo time.Time
	s.runUntil(s.start.Add(end))
	measureTo = s.now
	for _, c := range s.order {
		if c.got == c.wanted && c.last.After(measureTo) {
			measureTo = c.last
		}
	}
	res := s.result(measureFrom, s.start.Add(end))
	if cfg.Idle > 0 {
		s.msgs, s.bytes = 0, 0
		from := s.now
		s.runUntil(s.now.Add(cfg.Idle))
		secs := s.now.Sub(from).Seconds() * float64(cfg.Hosts)
		res.IdleMsgsPerHostSec, res.IdleBytesPerHostSec = s.msgs/secs, s.bytes/secs
	}
	res.Events = s.events
	return res
}

func (s *simulator) result(from, to time.Time) Result {
	r := Result{Hosts: s.cfg.Hosts, Changes: len(s.order), Late: s.late, HealConverged: s.healConverged,
		window: to.Sub(from), rate: s.cfg.Rate}
	slices.Sort(s.delays)
	r.Samples = len(s.delays)
	r.P50, r.P99, r.Max = pct(s.delays, 50), pct(s.delays, 99), pct(s.delays, 100)
	var every []time.Duration
	for _, c := range s.order {
		r.Missing += c.wanted - c.got
		if c.got == c.wanted {
			every = append(every, c.last.Sub(c.at))
		}
	}
	slices.Sort(every)
	r.EveryP50, r.EveryP99 = pct(every, 50), pct(every, 99)
	secs := to.Sub(from).Seconds() * float64(s.cfg.Hosts)
	r.MsgsPerHostSec, r.BytesPerHostSec = s.msgs/secs, s.bytes/secs
	r.TreeBytesPerHostSec, r.AEBytesPerHostSec = (s.split.Gossip+s.split.IHave+s.split.Control)/secs, s.split.AE/secs
	var delivered uint64
	for _, h := range s.hosts {
		r.MaxHostMsgs = max(r.MaxHostMsgs, float64(h.sent)/float64(max(1, len(s.order))))
		r.Grafts += h.tree.Stats.Grafts
		r.Prunes += h.tree.Stats.Prunes
		r.Duplicates += h.tree.Stats.Duplicates
		r.GraftIDs += h.tree.Stats.GraftIDs
		r.Answered += h.tree.Stats.Answered
		r.Copies += float64(h.tree.Stats.Delivered + h.tree.Stats.Duplicates)
		delivered += h.tree.Stats.Delivered
		e, _ := h.tree.Neighbors()
		r.EagerLinks += float64(len(e)) / float64(len(s.hosts))
	}
	perChange := float64(max(1, len(s.order)) * s.cfg.Hosts)
	r.Copies /= float64(max(1, delivered))
	r.PerChange = Split{s.split.Gossip / perChange, s.split.IHave / perChange, s.split.Control / perChange,
		s.split.AE / perChange, s.split.Packets / perChange}
	r.Converged = s.converged()
	r.RecordBytes = float64(s.payloadBytes) / float64(max(1, len(s.order)))
	sp := s.steadySplit
	// Anti-entropy runs on its own clock, after the changes as much as during
	// them: it keeps its whole-window share.
	r.Steady = Split{sp.Gossip / perChange, sp.IHave / perChange, sp.Control / perChange, r.PerChange.AE, sp.Packets / perChange}
	return r
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	k := int(p/100*float64(len(ds))+0.999999) - 1
	return ds[max(0, min(k, len(ds)-1))]
}

func (s *simulator) at(d time.Duration, e *event) { s.atTime(s.now.Add(d), e) }

func (s *simulator) atTime(t time.Time, e *event) {
	if t.Before(s.now) {
		t = s.now
	}
	e.at = t
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *simulator) runUntil(end time.Time) {
	for len(s.q) > 0 && !s.q[0].at.After(end) {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		s.events++
		s.handle(e)
	}
	s.now = end
}

func (s *simulator) handle(e *event) {
	switch e.kind {
	case evDeliverTree:
		h := s.hosts[e.to]
		if !h.up {
			return
		}
		from := s.hosts[e.from].name
		for _, m := range e.tree.Entries() {
			if _, fresh := h.tree.Receive(s.now, from, m); fresh {
				s.deliver(h, s.records[&m.Payload[0]])
				h.ae.NoteChange(s.now)
			}
		}
		s.flush(h)
	case evDeliverAE:
		h := s.hosts[e.to]
		if !h.up {
			return
		}
		if m, ok := e.ae.(*proto.AERecords); ok {
			s.deliver(h, m.Records)
			return
		}
		if err := h.ae.Receive(s.hosts[e.from].name, e.ae); err != nil {
			panic(fmt.Sprintf("sim: %s rejected anti-entropy input: %v", h.name, err))
		}
		s.flush(h)
	case evTick:
		h := s.hosts[e.to]
		if !h.up || !e.at.Equal(h.tickAt) {
			return
		}
		h.tickAt = time.Time{}
		h.tree.Tick(s.now)
		s.flush(h)
	case evAE:
		h := s.hosts[e.to]
		base := h.ae.Period(s.now, s.cfg.AEInterval)
		d := base/2 + time.Duration(s.rng.Int63n(int64(base)))
		s.at(d, &event{kind: evAE, to: h.idx})
		if !h.up || !h.ae.Due(s.now) {
			return
		}
		// Membership's view: hosts up and reachable (a partition shows as failures
		// once detected; approximated as immediate here, which only makes
		// anti-entropy rounds during a partition cheaper, not faster).
		for tries := 0; tries < 8; tries++ {
			p := s.hosts[s.rng.Intn(len(s.hosts))]
			if p != h && p.up && p.side == h.side {
				h.ae.Start(s.now, p.name)
				break
			}
		}
		s.flush(h)
	case evSteadyEnd:
		s.steady = false
	case evMeasure:
		s.measuring, s.steady = true, true
		for _, h := range s.hosts {
			h.tree.Stats = proto.TreeStats{}
		}
	case evChange:
		s.makeChange(e.from)
	case evFail:
		h := s.hosts[e.to]
		if !h.up {
			return
		}
		h.up = false
		s.at(s.cfg.Detect, &event{kind: evDetectFail, to: h.idx})
		s.at(s.cfg.ChurnDown, &event{kind: evReturn, to: h.idx})
	case evReturn:
		h := s.hosts[e.to]
		h.up = true
		h.tickAt = time.Time{}
		s.at(s.cfg.Rejoin, &event{kind: evDetectReturn, to: h.idx})
	case evDetectFail:
		if e.to < 0 {
			// A partition: each side's membership drops the other side.
			s.cut = true
			s.relayout()
			for _, o := range s.hosts {
				eager, lazy := o.tree.Neighbors()
				for _, n := range append(eager, lazy...) {
					if s.hosts[s.byName[n]].side != o.side {
						o.tree.RemovePeer(n)
					}
				}
				s.refill(o)
			}
			return
		}
		name := s.hosts[e.to].name
		s.hosts[e.to].listed = false
		s.relayout()
		for _, o := range s.hosts {
			if o.tree.IsNeighbor(name) {
				o.tree.RemovePeer(name)
				s.refill(o)
			}
		}
	case evDetectReturn:
		h := s.hosts[e.to]
		h.listed = true
		s.relayout()
		s.refill(h)
		// Its join's push/pull with one member compares digests; one random live
		// member stands for that here. Every member sees it return too, and a few
		// of them open an exchange (proto.ExchangeOnReturn).
		for tries := 0; tries < 8; tries++ {
			p := s.hosts[s.rng.Intn(len(s.hosts))]
			if p != h && p.up {
				h.ae.Start(s.now, p.name)
				break
			}
		}
		s.flush(h)
		alive := s.live()
		for _, o := range s.hosts {
			if o == h || !o.up {
				continue
			}
			o.ae.NoteReturn(s.now)
			if o.name < h.name && proto.ExchangeOnReturn(alive, s.rng.Float64()) {
				o.ae.Start(s.now, h.name)
				s.flush(o)
			}
		}
	case evPartition:
		s.partitioned = true
		n := int(float64(len(s.hosts)) * s.cfg.PartitionFraction)
		for _, i := range s.rng.Perm(len(s.hosts))[:n] {
			s.hosts[i].side = 1
		}
		// Membership on each side declares the other side failed after Detect.
		s.at(s.cfg.Detect, &event{kind: evDetectFail, to: -1})
	case evHeal:
		s.partitioned = false
		s.healedAt = s.now
		for _, h := range s.hosts {
			h.was, h.side = h.side, 0
		}
		s.cut = false
		s.at(s.cfg.Rejoin, &event{kind: evHealDetect})
		s.relayout()
		for _, h := range s.hosts {
			s.refill(h)
			s.flush(h)
		}
	case evHealDetect:
		// Membership on each side sees the other side's hosts return, and each
		// host opens exchanges with a few of them, as the agent's join event does
		// (proto.ExchangeOnReturn). The whole fleet stands for what a host sees
		// (the agent's count can lag a relayout behind and be its old side's).
		alive := s.live()
		for _, o := range s.hosts {
			if !o.up {
				continue
			}
			o.ae.NoteReturn(s.now)
			for _, h := range s.hosts {
				if h.up && h.was != o.was && o.name < h.name && proto.ExchangeOnReturn(alive, s.rng.Float64()) {
					o.ae.Start(s.now, h.name)
				}
			}
			s.flush(o)
		}
	case evCheck:
		if s.now.Sub(s.start) < 10*time.Minute {
			s.at(100*time.Millisecond, &event{kind: evCheck})
		}
		if !s.healedAt.IsZero() && s.healConverged == 0 && s.converged() {
			s.healConverged = s.now.Sub(s.healedAt)
		}
	}
}

// live is how many hosts are up.
func (s *simulator) live() int {
	n := 0
	for _, h := range s.hosts {
		if h.up {
			n++
		}
	}
	return n
}

// converged reports whether every live host has the same digest.
func (s *simulator) converged() bool {
	var root uint64
	first := true
	for _, h := range s.hosts {
		if !h.up {
			continue
		}
		r, _ := h.cat.Digest()
		if first {
			root, first = r, false
		} else if r != root {
			return false
		}
	}
	return true
}

// graftWait feeds the tree the round trip a host would measure (twice the mean
// one-way latency) through the same rule the agent uses.
func (s *simulator) graftWait(string) time.Duration {
	return proto.GraftWaitFor(s.depth, s.cfg.LatencyMin+s.cfg.LatencyMax)
}

// relayout gives every host its tree links from membership's view: one ring of the
// listed hosts (per side while a partition is detected).
func (s *simulator) relayout() {
	if s.cfg.TimingTree {
		return
	}
	views := map[int][]string{}
	for _, h := range s.hosts {
		if h.listed {
			side := 0
			if s.cut {
				side = h.side
			}
			views[side] = append(views[side], h.name)
		}
	}
	for side, names := range views {
		r := proto.NewRing(names, s.cfg.Fanout)
		s.depth = max(s.depth, r.Depth())
		for _, h := range s.hosts {
			if h.listed && (!s.cut || h.side == side) {
				h.tree.SetLinks(r.Links(h.name))
			}
		}
	}
}

// refill offers a host a random sample of members it can reach as neighbors.
func (s *simulator) refill(h *host) {
	need := h.tree.NeedPeers()
	if need == 0 {
		return
	}
	var cands []string
	for tries := 0; tries < 4*need+8 && len(cands) < 2*need; tries++ {
		p := s.hosts[s.rng.Intn(len(s.hosts))]
		if p != h && p.up && p.side == h.side {
			cands = append(cands, p.name)
		}
	}
	h.tree.AddPeers(cands)
	s.flush(h)
}

// flush sends what a host's machines queued and schedules its next tree tick.
func (s *simulator) flush(h *host) {
	for _, m := range h.tree.Outbox() {
		size := 2 + len(h.name) + m.Msg.Size()
		switch m.Msg.Kind {
		case proto.KindGossip, proto.KindBatch, proto.KindPack:
			s.count(h, size, func(p *Split) *float64 { return &p.Gossip })
		case proto.KindIHave, proto.KindIHaveShort:
			s.count(h, size, func(p *Split) *float64 { return &p.IHave })
		default:
			s.count(h, size, func(p *Split) *float64 { return &p.Control })
		}
		if to, ok := s.route(h, m.To, size); ok {
			s.at(to, &event{kind: evDeliverTree, to: s.byName[m.To], from: h.idx, tree: m.Msg})
		}
	}
	for _, m := range h.ae.Outbox() {
		size := aeSize(h.name, m.Msg)
		s.count(h, size, func(p *Split) *float64 { return &p.AE })
		if to, ok := s.route(h, m.To, size); ok {
			s.at(to, &event{kind: evDeliverAE, to: s.byName[m.To], from: h.idx, ae: m.Msg})
		}
	}
	if d := h.tree.Deadline(); !d.IsZero() && (h.tickAt.IsZero() || d.Before(h.tickAt)) {
		h.tickAt = d
		s.atTime(d, &event{kind: evTick, to: h.idx})
	}
}

// count adds one message of size bytes, sent by h, to the totals and to kind (a
// field of split) while measuring.
func (s *simulator) count(h *host, size int, kind func(*Split) *float64) {
	if !s.measuring {
		return
	}
	h.sent++
	s.msgs++
	s.split.Packets += packetOverhead
	s.bytes += float64(size + packetOverhead)
	*kind(&s.split) += float64(size + packetOverhead)
	if s.steady {
		s.steadySplit.Packets += packetOverhead
		*kind(&s.steadySplit) += float64(size + packetOverhead)
	}
}

// route decides a message's fate: its delay, or lost.
func (s *simulator) route(from *host, to string, size int) (time.Duration, bool) {
	dst := s.hosts[s.byName[to]]
	if from.side != dst.side {
		return 0, false
	}
	d := s.cfg.LatencyMin
	if span := s.cfg.LatencyMax - s.cfg.LatencyMin; span > 0 {
		d += time.Duration(s.rng.Int63n(int64(span)))
	}
	if size > udpLimit {
		return d * 3 / 2, true
	}
	if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
		return 0, false
	}
	return d, true
}

func aeSize(from string, m any) int {
	if r, ok := m.(*proto.AERecords); ok {
		return 1 + len(catalog.AppendRecords(nil, r.Records))
	}
	// The agent sends a control message as one JSON object holding the sender's
	// origin and the message's fields (both are objects with fields, so joining
	// them replaces "}{" by ",").
	o, _ := json.Marshal(struct {
		From string `json:"from"`
		Addr string `json:"addr,omitempty"`
	}{from, "[fdaa::1]:7946"})
	b, _ := json.Marshal(m)
	return 1 + len(o) + len(b) - 1
}

// deliver applies records to a host's catalog and stamps the changes they carry.
func (s *simulator) deliver(h *host, rs []*catalog.Record) {
	for _, r := range h.cat.ApplyAll(rs) {
		c := s.changes[r.ID()]
		if c == nil || !c.want[h.idx] || r.Version.Compare(c.ver) < 0 {
			continue
		}
		c.want[h.idx] = false
		c.got++
		d := s.now.Sub(c.at)
		s.delays = append(s.delays, d)
		if s.now.After(c.last) {
			c.last = s.now
		}
		if !s.healedAt.IsZero() && s.now.After(s.healedAt) {
			s.late++
		}
	}
}

// makeChange creates machine number i on a random live host and publishes it.
func (s *simulator) makeChange(i int) {
	if i >= 0 && s.cfg.Health {
		s.makeTransition()
		return
	}
	var h *host
	for h == nil || !h.up {
		h = s.hosts[s.rng.Intn(len(s.hosts))]
	}
	st := h.cat.Tick()
	k := i + 1<<16 // warm-up changes have negative numbers
	// Spread over simApps apps in simNets networks, as a fleet's machines are: the
	// catalog rebuilds the touched network's view per change, so one giant app would
	// make the simulator measure that instead of the protocol.
	app, nw := k%simApps, (k%simApps)%simNets
	m := &catalog.Machine{
		ID:           fmt.Sprintf("%014x", uint64(k)*0x9E3779B97F4A7C15&(1<<56-1)),
		MachinePlace: &catalog.MachinePlace{App: fmt.Sprintf("app%03d", app), Org: "sim", Network: fmt.Sprintf("net%02d", nw), NetworkID: simNet + uint32(nw), Host: h.name, HostID: uint32(h.idx + 1), Region: "ord"},
		Field:        sixpn.MinMachineField + uint32(k),
		CreatedAt:    s.start,
		MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, ProcessGroup: "app"},
	}
	m.Address = sixpn.MachineAddr(m.NetworkID, m.HostID, m.Field)
	r := &catalog.Record{Kind: catalog.KindMachine, Key: m.ID, Gen: 1, Created: st, Version: st, Machine: m}
	if s.cfg.Health {
		now := s.now
		r.Machine = m.WithHealth([]catalog.Check{{Kind: catalog.CheckHTTP, Target: "8080/healthz", Status: catalog.HealthPassing, Output: "HTTP 200", CheckedAt: &now}})
		h.own = append(h.own, r)
	}
	s.publish(h, r, i >= 0)
}

// makeTransition has a random live host write one of its machines critical.
func (s *simulator) makeTransition() {
	var h *host
	for h == nil || !h.up || len(h.own) == 0 {
		h = s.hosts[s.rng.Intn(len(s.hosts))]
	}
	old := h.own[len(h.own)-1]
	h.own = h.own[:len(h.own)-1]
	now := s.now
	r := *old
	r.Version = h.cat.Tick()
	r.Machine = old.Machine.WithHealth([]catalog.Check{{Kind: catalog.CheckHTTP, Target: "8080/healthz", Status: catalog.HealthCritical,
		Output: "HTTP 503", CheckedAt: &now}})
	s.publish(h, &r, true)
}

// publish applies r on h and sends it down the tree; measured changes are timed.
func (s *simulator) publish(h *host, r *catalog.Record, measured bool) {
	h.cat.Apply(r)
	payload := catalog.AppendRecords(nil, []*catalog.Record{r})
	s.records[&payload[0]] = []*catalog.Record{r}
	if !measured {
		h.tree.Publish(s.now, payload)
		s.flush(h)
		return
	}
	c := &change{id: r.ID(), ver: r.Version, at: s.now, src: h.idx, want: make([]bool, len(s.hosts))}
	for _, o := range s.hosts {
		if o != h && o.up && o.side == h.side {
			c.want[o.idx] = true
			c.wanted++
		}
	}
	s.changes[c.id] = c
	s.order = append(s.order, c)
	s.payloadBytes += len(payload)
	h.tree.Publish(s.now, payload)
	s.flush(h)
}

const (
	simNet  = 0x00c0ff00
	simNets = 10
	simApps = 200
)

func parentRecords() []*catalog.Record {
	st := catalog.Stamp{Clock: 1, Node: 1}
	t := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	out := []*catalog.Record{{Kind: catalog.KindOrg, Key: "sim", Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: "sim", CreatedAt: t}}}
	for n := 0; n < simNets; n++ {
		name := fmt.Sprintf("net%02d", n)
		out = append(out, &catalog.Record{Kind: catalog.KindNetwork, Key: catalog.NetworkKey("sim", name), Gen: 1, Created: st, Version: st,
			Network: &catalog.Network{Org: "sim", Name: name, ID: simNet + uint32(n)}})
	}
	for a := 0; a < simApps; a++ {
		name, n := fmt.Sprintf("app%03d", a), a%simNets
		out = append(out, &catalog.Record{Kind: catalog.KindApp, Key: catalog.AppKey("sim", name), Gen: 1, Created: st, Version: st,
			App: &catalog.App{Name: name, Org: "sim", Network: fmt.Sprintf("net%02d", n), NetworkID: simNet + uint32(n)}})
	}
	return out
}
