//go:build agent

package main

import (
	"log/slog"
	"sync"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/health"
)

// machineChecks runs the health checks of this host's started machines and writes
// their transitions through the node, like any record the host owns.
type machineChecks struct {
	node   *mesh.Node
	log    *slog.Logger
	runner *health.Runner
	trans  *prometheus.CounterVec
	stop   func()
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func startChecks(node *mesh.Node, log *slog.Logger, reg prometheus.Registerer) *machineChecks {
	c := &machineChecks{node: node, log: log, quit: make(chan struct{}), done: make(chan struct{}),
		trans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dogwood_health_transitions_total",
			Help: "Health transitions of this host's machines, by the health they went to."}, []string{"to"})}
	c.runner = health.NewRunner(health.RunnerConfig{Prober: health.NetProber{}, OnTransition: c.transition})
	for _, h := range []string{catalog.HealthPassing, catalog.HealthCritical, catalog.HealthUnknown} {
		c.trans.WithLabelValues(h)
	}
	reg.MustRegister(c.trans, &healthCollector{node: node, runner: c.runner})
	ch, stop := node.Catalog().Watch()
	c.stop = stop
	go c.loop(ch)
	return c
}

func (c *machineChecks) loop(ch <-chan struct{}) {
	defer close(c.done)
	var last []*catalog.Machine
	for {
		snap := c.node.Catalog().Latest()
		if ms := snap.LocalMachines; len(ms) != len(last) || unsafe.SliceData(ms) != unsafe.SliceData(last) {
			last = ms
			c.runner.Set(targets(ms))
		}
		select {
		case <-ch:
		case <-c.quit:
			return
		}
	}
}

// targets are the started machines with checks.
func targets(ms []*catalog.Machine) []health.Target {
	var out []health.Target
	for _, m := range ms {
		if m.Started() && len(m.Checks) > 0 && m.Address.IsValid() {
			out = append(out, health.Target{ID: m.ID, Addr: m.Address, Checks: m.Checks})
		}
	}
	return out
}

func (c *machineChecks) transition(tr health.Transition) {
	if tr.From != tr.To {
		var why string
		for _, ch := range tr.Checks {
			if ch.Status != catalog.HealthPassing {
				why += ch.Spec() + ": " + ch.Status + " (" + ch.Output + ") "
			}
		}
		c.log.Warn("machine health changed", "machine", tr.Machine, "from", tr.From, "to", tr.To, "checks", why)
		c.trans.WithLabelValues(tr.To).Inc()
	}
	if err := c.node.Machines.SetHealth(tr.Machine, tr.Checks); err != nil {
		c.log.Warn("write machine health", "machine", tr.Machine, "err", err)
	}
}

// live is the API's view of this host's checks.
func (c *machineChecks) live(id string) []catalog.Check { return c.runner.Live(id) }

func (c *machineChecks) close() {
	c.once.Do(func() {
		c.stop()
		close(c.quit)
		<-c.done
		c.runner.Close()
	})
}

// healthCollector counts the catalog's started machines by health at scrape time.
type healthCollector struct {
	node   *mesh.Node
	runner *health.Runner
}

var (
	machinesByHealth = prometheus.NewDesc("dogwood_machines", "Started machines in the catalog by health (a machine without checks passes).", []string{"health"}, nil)
	localChecked     = prometheus.NewDesc("dogwood_health_checked_machines", "Machines of this host whose checks it runs, by health.", []string{"health"}, nil)
)

func (h *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- machinesByHealth
	ch <- localChecked
}

func (h *healthCollector) Collect(ch chan<- prometheus.Metric) {
	n := map[string]int{catalog.HealthPassing: 0, catalog.HealthCritical: 0, catalog.HealthUnknown: 0}
	for _, a := range h.node.Catalog().Latest().Apps {
		for _, m := range a.Machines {
			if m.Started() {
				n[m.HealthOrPassing()]++
			}
		}
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(machinesByHealth, prometheus.GaugeValue, float64(v), k)
	}
	for k, v := range h.runner.Counts() {
		ch <- prometheus.MustNewConstMetric(localChecked, prometheus.GaugeValue, float64(v), k)
	}
}
