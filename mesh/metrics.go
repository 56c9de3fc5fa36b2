package mesh

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh/catalog"
)

type metrics struct {
	writes            prometheus.Counter
	peerCreates       prometheus.Counter
	peerRemoves       prometheus.Counter
	peerExpiries      prometheus.Counter
	peerCreateSeconds prometheus.Histogram
	// conflicts counts conflict resolutions this host took part in, by record kind.
	conflicts *prometheus.CounterVec
	collected prometheus.Counter
}

// catalogCollector reads counts at scrape time instead of keeping gauges in sync.
type catalogCollector struct {
	cat                       *catalog.Catalog
	records, members, gwPeers *prometheus.Desc
}

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.members
	ch <- c.gwPeers
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	live, tomb := c.cat.Len()
	for _, k := range catalog.Kinds() {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(live[k]), k.String())
	}
	ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(tomb), "tombstone")
	counts := map[string]int{catalog.StatusAlive: 0, catalog.StatusSuspect: 0, catalog.StatusFailed: 0, catalog.StatusLeft: 0}
	snap := c.cat.Snapshot()
	for _, h := range snap.Hosts {
		counts[h.Status]++
	}
	for st, v := range counts {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(v), st)
	}
	ch <- prometheus.MustNewConstMetric(c.gwPeers, prometheus.GaugeValue, float64(len(snap.LocalPeers)))
}

func newMetrics() *metrics {
	m := &metrics{
		writes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_catalog_local_writes_total", Help: "Records written by this host."}),
		peerCreates:  prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_peer_creates_total", Help: "User peers created through this agent."}),
		peerRemoves:  prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_peer_removes_total", Help: "User peers removed through this agent."}),
		peerExpiries: prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_peer_expiries_total", Help: "User peers this gateway removed on expiry."}),
		peerCreateSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dogwood_peer_create_seconds", Help: "Peer create latency, request to installed on the gateway.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		collected: prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_tombstones_collected_total", Help: "Tombstones dropped after --tombstone-ttl."}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_conflicts_resolved_total",
			Help: "Conflicts this host resolved or lost: concurrent creates of one name, host names taken over by a re-image."}, []string{"kind"}),
	}
	return m
}

// register exports the counters and the catalog's counts to reg (nil: nowhere).
func (m *metrics) register(reg prometheus.Registerer, cat *catalog.Catalog) {
	if reg != nil {
		reg.MustRegister(m.writes, m.conflicts, m.collected, m.peerCreates, m.peerRemoves, m.peerExpiries, m.peerCreateSeconds, &catalogCollector{
			cat:     cat,
			records: prometheus.NewDesc("dogwood_catalog_records", "Catalog records by kind (live), and tombstones.", []string{"kind"}, nil),
			members: prometheus.NewDesc("dogwood_members", "Hosts by membership status.", []string{"status"}, nil),
			gwPeers: prometheus.NewDesc("dogwood_gateway_peers", "User peers on this gateway.", nil, nil),
		})
	}
}
