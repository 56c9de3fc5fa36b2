//go:build agent

package main

import "github.com/prometheus/client_golang/prometheus"

// agentLinked: this build is dogwood-agent, which runs every command itself.
const agentLinked = true

// collector is the constant dogwood_build_info gauge (value 1, the build in labels),
// the convention Prometheus' own build_info metrics follow.
func (b buildInfo) collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dogwood_build_info",
		Help: "A constant 1 labelled with the version, commit, build date and Go version of the running agent.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "commit": b.Commit, "date": b.Date, "goversion": b.GoVersion,
		},
	})
	g.Set(1)
	return g
}
