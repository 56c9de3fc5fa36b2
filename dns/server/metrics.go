package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	forwarded prometheus.Counter
	upstream  *prometheus.CounterVec
	malformed prometheus.Counter
	dropped   prometheus.Counter
	rrl       *prometheus.CounterVec

	// Resolved children, so the per-query cost is a map read, not label hashing.
	mu       sync.RWMutex
	children map[uint32]prometheus.Counter
	local    prometheus.Observer
	forward  prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "queries_total",
			Help: "DNS queries answered, by query type and response code.",
		}, []string{"type", "rcode"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "request_duration_seconds",
			Help:    "Time from a parsed query to its written response; path is local (.internal, refusals, errors) or forward.",
			Buckets: []float64{.00001, .00003, .0001, .0003, .001, .003, .01, .03, .1, .3, 1, 3},
		}, []string{"path"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "forwarded_total",
			Help: "Queries sent to upstream resolvers.",
		}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "upstream_failures_total",
			Help: "Failed attempts per upstream resolver (timeouts, errors, SERVFAIL/REFUSED answers).",
		}, []string{"upstream"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "malformed_total",
			Help: "Packets that could not be parsed as DNS queries.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "dropped_total",
			Help: "UDP queries dropped because too many on the same socket were waiting for an upstream resolver.",
		}),
		rrl: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "dogwood", Subsystem: "dns", Name: "rrl_limited_total",
			Help: "UDP responses held back by response-rate limiting (--dns-rrl): slip (sent truncated and empty) or drop.",
		}, []string{"action"}),
		children: map[uint32]prometheus.Counter{},
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.latency, m.forwarded, m.upstream, m.malformed, m.dropped, m.rrl} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	m.local = m.latency.WithLabelValues("local")
	m.forward = m.latency.WithLabelValues("forward")
	return m, nil
}

// typeLabel keeps the label set small: the types we serve or commonly see, else "other".
func typeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSRV, dns.TypePTR, dns.TypeSOA,
		dns.TypeNS, dns.TypeANY, dns.TypeMX, dns.TypeCNAME, dns.TypeHTTPS, dns.TypeSVCB:
		return dns.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(rc int) string {
	// 16 is BADSIG only inside TSIG records; as a response code (the extended rcode
	// of an OPT record, which is how a server answers) it is BADVERS (RFC 6891).
	if rc == dns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

func (m *metrics) query(qtype uint16, rcode int) {
	if typeLabel(qtype) == "other" {
		qtype = 0
	}
	key := uint32(qtype)<<16 | uint32(rcode&0xffff)
	m.mu.RLock()
	c := m.children[key]
	m.mu.RUnlock()
	if c == nil {
		label := "other"
		if qtype != 0 {
			label = typeLabel(qtype)
		}
		c = m.queries.WithLabelValues(label, rcodeLabel(rcode))
		m.mu.Lock()
		m.children[key] = c
		m.mu.Unlock()
	}
	c.Inc()
}

// answered counts one response and its latency since start, by path.
func (m *metrics) answered(qtype uint16, rcode int, fwd bool, start time.Time) {
	m.query(qtype, rcode)
	if fwd {
		m.forward.Observe(time.Since(start).Seconds())
	} else {
		m.local.Observe(time.Since(start).Seconds())
	}
}
