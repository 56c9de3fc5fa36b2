package gossip

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
)

// Metrics are the gossip layer's Prometheus collectors.
type Metrics struct {
	sent, received, dropped, sendErrors *prometheus.CounterVec
	events                              *prometheus.CounterVec
	aeBytes, treeBytes                  *prometheus.CounterVec
	aeRounds, aeRecords                 prometheus.Counter

	// The series counted on every message, resolved once (see series).
	sentBy, receivedBy, sendErrorsBy series[msgType]
	treeBytesBy                      series[proto.Kind]
	aeSent, aeReceived               series[uint8]
}

// series are one CounterVec's counters by a one-byte key, each resolved on first
// use: WithLabelValues hashes the label values on every call, and counting every
// message sent and received that way was 2.5 % of the CPU of 150 agents in one
// process passing changes on. A series appears when first counted, as before.
type series[K ~uint8] struct {
	vec   *prometheus.CounterVec
	label func(K) string
	c     [256]atomic.Pointer[prometheus.Counter]
}

func (s *series[K]) of(k K) prometheus.Counter {
	if c := s.c[k].Load(); c != nil {
		return *c
	}
	c := s.vec.WithLabelValues(s.label(k))
	s.c[k].Store(&c)
	return c
}

// NewMetrics registers the collectors on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_gossip_messages_sent_total", Help: "Gossip messages sent, by type."}, []string{"type"}),
		received:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_gossip_messages_received_total", Help: "Gossip messages received, by type."}, []string{"type"}),
		dropped:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_gossip_messages_dropped_total", Help: "Gossip input dropped: undecryptable, malformed or invalid."}, []string{"reason"}),
		sendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_gossip_send_errors_total", Help: "Gossip sends that failed, by type."}, []string{"type"}),
		events:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_gossip_member_events_total", Help: "Membership events."}, []string{"event"}),
		aeBytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_antientropy_bytes_total", Help: "Anti-entropy bytes, by direction."}, []string{"direction"}),
		treeBytes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_gossip_tree_bytes_sent_total", Help: "Broadcast-tree bytes sent, by message kind (gossip: eager copies; ihave: announcements)."}, []string{"kind"}),
		aeRounds:   prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_antientropy_rounds_total", Help: "Anti-entropy exchanges started."}),
		aeRecords:  prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_antientropy_records_sent_total", Help: "Records sent to repair a peer's catalog."}),
	}
	byType := func(t msgType) string { return t.String() }
	m.sentBy = series[msgType]{vec: m.sent, label: byType}
	m.receivedBy = series[msgType]{vec: m.received, label: byType}
	m.sendErrorsBy = series[msgType]{vec: m.sendErrors, label: byType}
	m.treeBytesBy = series[proto.Kind]{vec: m.treeBytes, label: treeKind}
	m.aeSent = series[uint8]{vec: m.aeBytes, label: func(uint8) string { return "sent" }}
	m.aeReceived = series[uint8]{vec: m.aeBytes, label: func(uint8) string { return "received" }}
	// Every reason starts at 0, so a healthy host exports the series (a
	// dashboard panel or a rate() over a missing series shows "no data").
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.received, m.dropped, m.sendErrors, m.events, m.aeBytes, m.treeBytes, m.aeRounds, m.aeRecords)
	}
	return m
}

// dropReasons are the reason labels of dogwood_gossip_messages_dropped_total.
var dropReasons = []string{"decrypt", "memberlist", "malformed", "invalid_record", "stream_cap",
	"clock_skew", "duplicate_records", "replay", "replay_memory", "unsealed", "over_limit"}
