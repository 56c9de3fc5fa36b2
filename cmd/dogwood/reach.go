//go:build agent

package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/mesh/api"
	"github.com/dogwood/dogwood/peers/reach"
)

// reachSampleEvery is how often the device's counters are read for the reach view.
const reachSampleEvery = time.Second

// reachView is this host's own view of which hosts it reaches over WireGuard: it
// samples the device every second into a reach.Tracker, nudges quiet tunnels, and
// publishes the result to DNS (resolve.Reachability), doctor, status and a metric.
// Nothing of it is gossiped.
type reachView struct {
	dp  *dataPlane
	log *slog.Logger

	mu      sync.Mutex // guards tr
	tr      *reach.Tracker
	nudge   *net.UDPConn // from fdaa::3; opened once that address is on the host
	cut     atomic.Pointer[resolve.HostSet]
	up      *prometheus.GaugeVec
	changes prometheus.Counter

	cancel context.CancelFunc
	done   chan struct{}
}

// startReach starts sampling; nil with WireGuard off (every host counts as reachable).
func startReach(dp *dataPlane, log *slog.Logger, reg prometheus.Registerer) *reachView {
	if dp.dp == nil {
		return nil
	}
	r := &reachView{dp: dp, log: log, tr: reach.New(), done: make(chan struct{}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dogwood_wireguard_peer_reachable",
			Help: "1 when this host receives from the host's WireGuard tunnel, 0 when the tunnel is dead (nothing received for 20 s although nudged); its machines are then left out of this host's DNS answers."}, []string{"peer"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "dogwood_wireguard_reachability_changes_total",
			Help: "Times the set of hosts this host cannot reach over WireGuard changed."}),
	}
	reg.MustRegister(r.up, r.changes)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.loop(ctx)
	return r
}

// Unreachable implements resolve.Reachability.
func (r *reachView) Unreachable() *resolve.HostSet {
	if r == nil {
		return nil
	}
	return r.cut.Load()
}

// reachable reports whether a host's tunnel is alive, and how long it has received
// nothing (-1: not a peer yet).
func (r *reachView) reachable(host string) (bool, time.Duration) {
	if r == nil {
		return true, -1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.cut.Load().Has(host), r.tr.Silence(time.Now(), host)
}

// annotate adds the verdict on each host peer to a WireGuard status.
func (r *reachView) annotate(status func() (*api.WireGuardStatus, error)) func() (*api.WireGuardStatus, error) {
	if r == nil {
		return status
	}
	return func() (*api.WireGuardStatus, error) {
		st, err := status()
		if st == nil {
			return st, err
		}
		for i, p := range st.Peers {
			if ok, silent := r.reachable(p.Host); silent >= 0 {
				st.Peers[i].Reachable = &ok
			}
		}
		return st, err
	}
}

func (r *reachView) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(reachSampleEvery)
	defer t.Stop()
	for {
		r.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *reachView) sample() {
	st, err := r.dp.dp.Status()
	if err != nil {
		return // no verdict without a reading; the next tick tries again
	}
	var ss []reach.Sample
	target := map[string]netip.Addr{}
	for _, p := range st.Peers {
		if p.Kind != "host" || p.Name == "" {
			continue
		}
		// Any address of the host's first /80 routes into its tunnel; the base one
		// (machine field 0, reserved) belongs to no machine.
		if len(p.AllowedIPs) > 0 {
			if pfx, err := netip.ParsePrefix(p.AllowedIPs[0]); err == nil {
				target[p.Name] = pfx.Masked().Addr()
			}
		}
		_, ok := target[p.Name]
		ss = append(ss, reach.Sample{Host: p.Name, RxBytes: p.RxBytes, Nudgeable: ok})
	}
	now := time.Now()
	r.mu.Lock()
	changed := r.tr.Observe(now, ss)
	dead := r.tr.Unreachable()
	if changed {
		r.cut.Store(resolve.NewHostSet(dead...))
	}
	nudge := r.tr.Nudge(now)
	r.mu.Unlock()
	r.sendNudges(nudge, target)
	r.up.Reset()
	cut := resolve.NewHostSet(dead...)
	for _, s := range ss {
		v := 1.0
		if cut.Has(s.Host) {
			v = 0
		}
		r.up.WithLabelValues(s.Host).Set(v)
	}
	if changed {
		r.changes.Inc()
		r.log.Warn("wireguard reachability changed: this host leaves the machines of unreachable hosts out of its DNS answers",
			"unreachable", dead)
	}
}

// nudgeFrom is the nudges' source: an address every host has (the machines' DNS
// address) and none owns in WireGuard, so the other side's WireGuard drops the
// datagram right after decrypting it (and arming its keepalive); it never reaches
// that host's network stack.
var nudgeFrom = netip.MustParseAddr("fdaa::3")

// sendNudges sends one datagram into each quiet tunnel (see peers/reach).
func (r *reachView) sendNudges(hosts []string, target map[string]netip.Addr) {
	if len(hosts) == 0 {
		return
	}
	if r.nudge == nil {
		c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(nudgeFrom, 0)))
		if err != nil {
			r.log.Debug("reachability nudges wait for fdaa::3", "err", err)
			return
		}
		r.nudge = c
	}
	for _, h := range hosts {
		if _, err := r.nudge.WriteToUDPAddrPort([]byte{0}, netip.AddrPortFrom(target[h], 9)); err != nil {
			r.log.Debug("reachability nudge", "host", h, "err", err)
		}
	}
}

func (r *reachView) close() {
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
	if r.nudge != nil {
		r.nudge.Close()
		r.nudge = nil
	}
}
