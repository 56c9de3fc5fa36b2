package peers

import (
	"math"

	"github.com/dogwood/dogwood/peers/plan"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// metrics are registered on the agent's Registerer, computed from the device at
// scrape time. Handshake ages come twice: a histogram over all peers, and one
// series per peer (labelled with the host name or org/name of a user peer), so an
// alert can say which host is stale. Per-peer series are bounded by the peers
// this interface has: every host, plus the user peers of a gateway.
type metrics struct {
	d        *DataPlane
	reg      prometheus.Registerer
	runs     *prometheus.CounterVec
	errors   *prometheus.CounterVec
	changes  *prometheus.CounterVec
	duration prometheus.Histogram

	peersDesc, ageDesc, neverDesc *prometheus.Desc
	peerAge, peerRx, peerTx       *prometheus.Desc
}

func newMetrics(d *DataPlane) *metrics {
	return &metrics{
		d: d,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dogwood_wireguard_reconcile_runs_total", Help: "Data plane reconciles, by result (ok, error).",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dogwood_wireguard_reconcile_errors_total", Help: "Failed reconcile stages (filter, forwarding, peers, routes, dns_addresses, machines).",
		}, []string{"stage"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dogwood_wireguard_peer_changes_total", Help: "WireGuard peers added, updated or removed by reconciles.",
		}, []string{"op"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dogwood_wireguard_reconcile_duration_seconds", Help: "Time to reconcile the data plane with a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		peersDesc: prometheus.NewDesc("dogwood_wireguard_peers", "WireGuard peers on the interface, by kind (host, user, unknown).", []string{"kind"}, nil),
		ageDesc:   prometheus.NewDesc("dogwood_wireguard_handshake_age_seconds", "Age of each peer's latest handshake (peers that have one).", nil, nil),
		neverDesc: prometheus.NewDesc("dogwood_wireguard_peers_without_handshake", "Peers that never completed a handshake.", nil, nil),
		peerAge: prometheus.NewDesc("dogwood_wireguard_peer_handshake_age_seconds",
			"Seconds since the peer's latest handshake; +Inf if it never completed one.", []string{"kind", "peer"}, nil),
		peerRx: prometheus.NewDesc("dogwood_wireguard_peer_receive_bytes_total",
			"Bytes received from the peer (WireGuard's counter; it restarts with the interface).", []string{"kind", "peer"}, nil),
		peerTx: prometheus.NewDesc("dogwood_wireguard_peer_transmit_bytes_total",
			"Bytes sent to the peer (WireGuard's counter; it restarts with the interface).", []string{"kind", "peer"}, nil),
	}
}

var ageBuckets = []float64{5, 30, 120, 180, 300, 600, 1800, 3600, 86400}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.runs, m.errors, m.changes, m.duration, m} {
		if err := r.Register(c); err != nil {
			m.reg = r
			m.unregister()
			return err
		}
	}
	m.reg = r
	return nil
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.runs, m.errors, m.changes, m.duration, m} {
		m.reg.Unregister(c)
	}
	m.reg = nil
}

// Describe implements prometheus.Collector for the scrape-time device metrics.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.peersDesc
	ch <- m.ageDesc
	ch <- m.neverDesc
	ch <- m.peerAge
	ch <- m.peerRx
	ch <- m.peerTx
}

// Collect reads the device once per scrape.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	dev, err := m.d.dev.Device()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.peersDesc, err)
		return
	}
	m.d.stateMu.RLock()
	names := m.d.names
	m.d.stateMu.RUnlock()
	now := m.d.cfg.Now()
	kinds := map[string]float64{"host": 0, "user": 0, "unknown": 0}
	counts := make(map[float64]uint64, len(ageBuckets))
	var n uint64
	var sum, never float64
	for i := range dev.Peers {
		p := &dev.Peers[i]
		kind := kindOf(names, p.PublicKey)
		kinds[kind]++
		name := names[p.PublicKey].Name
		if name == "" {
			name = p.PublicKey.String()
		}
		ch <- prometheus.MustNewConstMetric(m.peerRx, prometheus.CounterValue, float64(p.ReceiveBytes), kind, name)
		ch <- prometheus.MustNewConstMetric(m.peerTx, prometheus.CounterValue, float64(p.TransmitBytes), kind, name)
		if p.LastHandshakeTime.IsZero() {
			never++
			ch <- prometheus.MustNewConstMetric(m.peerAge, prometheus.GaugeValue, math.Inf(1), kind, name)
			continue
		}
		age := now.Sub(p.LastHandshakeTime).Seconds()
		ch <- prometheus.MustNewConstMetric(m.peerAge, prometheus.GaugeValue, age, kind, name)
		n++
		sum += age
		for _, b := range ageBuckets {
			if age <= b {
				counts[b]++
			}
		}
	}
	for k, v := range kinds {
		ch <- prometheus.MustNewConstMetric(m.peersDesc, prometheus.GaugeValue, v, k)
	}
	ch <- prometheus.MustNewConstHistogram(m.ageDesc, n, sum, counts)
	ch <- prometheus.MustNewConstMetric(m.neverDesc, prometheus.GaugeValue, never)
}

func kindOf(names map[wgtypes.Key]plan.Peer, k wgtypes.Key) string {
	if p, ok := names[k]; ok {
		return p.Kind.String()
	}
	return "unknown"
}
