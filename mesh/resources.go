package mesh

import (
	"context"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// wireResources builds the resource types from the node's parts: each gets only
// the neighbours it needs, as interfaces, so the node is their composition root and
// nothing else.
func wireResources(n *Node) {
	var (
		w               = n.rep
		names           = n.names
		alloc           = n.adm
		inst  Installer = noDataPlane{}
		stats func() map[string]PeerStat
		name  = n.adm.id.Name
		cfg   = n.cfg
	)
	if dp := cfg.DataPlane; dp != nil {
		inst, stats = dp, dp.PeerStats
	}
	n.Networks = &Networks{r: n.cat, names: names, randID: sixpn.Random32}
	n.Orgs = &Orgs{r: n.cat, w: w, names: names, networks: n.Networks, limits: cfg.Limits, now: n.now}
	n.Apps = &Apps{r: n.cat, w: w, names: names, limits: cfg.Limits}
	n.Machines = &Machines{host: name, region: cfg.Region, r: n.cat, w: w, alloc: alloc, inst: inst, call: n.gossip,
		limits: cfg.Limits, now: n.now, randField: sixpn.RandomMachineField}
	n.DNSRecords = &DNSRecords{r: n.cat, w: w, names: names, limits: cfg.Limits, now: n.now, log: n.log}
	gw := &gatewayPeers{host: name, region: cfg.Region, gateway: cfg.Gateway, r: n.cat, w: w, names: names, alloc: alloc,
		inst: inst, peerStats: stats, now: n.now, log: n.log, metrics: n.metrics, reserved: map[int]bool{}}
	n.Peers = &Peers{host: name, r: n.cat, w: w, call: n.gossip, rtt: n.gossip.RTT, limits: cfg.Limits, now: n.now,
		log: n.log, metrics: n.metrics, gw: gw}
	n.Invites = &Invites{cfg: cfg.Invites, gateway: cfg.Gateway, host: name, region: cfg.Region, r: n.cat, pool: gw,
		call: n.gossip, rtt: n.gossip.RTT, now: n.now, log: n.log, metrics: n.metrics}
	n.Members = &Members{host: name, r: n.cat, w: w, versions: n.gossip}
}

// noDataPlane installs nothing: tests and hosts without a data plane.
type noDataPlane struct{}

func (noDataPlane) Installed(context.Context, catalog.ID) error { return nil }

// tombstone writes deletions of the given live records.
func tombstone(w Writer, rs ...*catalog.Record) error { return w.Commit(w.Tombstones(rs...)...) }

// waitRecord watches the local catalog until cond holds for id or ctx ends (bounded at
// 2s): after another host wrote a change for us, so that a list here right after
// shows it.
func waitRecord(ctx context.Context, r Reader, id catalog.ID, cond func(*catalog.Record) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ch, stop := r.Watch()
	defer stop()
	for {
		if rec := r.Get(id); rec != nil && cond(rec) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}
