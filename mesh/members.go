package mesh

import (
	"context"
	"fmt"
	"sort"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/release"
)

// Members lists the cluster's hosts and removes the ones gone for good.
type Members struct {
	host     string // this host's name
	r        Reader
	w        Writer
	versions interface{ Versions() *gossip.Versions }
}

// List lists every host in the catalog with its membership status.
func (ms *Members) List() []MemberInfo {
	snap := ms.r.Snapshot()
	out := []MemberInfo{}
	vs := ms.versions.Versions()
	for _, h := range snap.Hosts {
		m := MemberInfo{
			Name: h.Name, HostID: h.ID, HostIDHex: fmt.Sprintf("%08x", h.ID), Region: h.Region,
			Addr: fmt.Sprintf("%s:%d", h.Addr, h.GossipPort), Status: h.Status, Gateway: h.Gateway,
			PublicKey: h.PublicKey, Endpoint: h.PublicEndpoint,
		}
		if h.Name == ms.host {
			m.Version, m.Protocol = release.Version, gossip.Protocol
		} else if mv, ok := vs.Member(h.Name); ok {
			m.Version, m.Protocol, m.VersionProblem = mv.Release, mv.Protocol, mv.Problem
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove removes a host for good: its record, machines and peers are tombstoned.
// A live host must leave first (stop its agent), so a running host is never cut off
// by accident.
func (ms *Members) Remove(ctx context.Context, name string) error {
	if err := ValidHostName(name); err != nil {
		return err
	}
	if name == ms.host {
		return invalid("cannot remove this host from itself; run it on another host after stopping this agent")
	}
	hr := ms.r.Live(catalog.ID{Kind: catalog.KindHost, Key: name})
	if hr == nil {
		return notFound("host %q not found", name)
	}
	if st := ms.r.Status(name); catalog.Live(st) {
		return conflict("host %q is %s; stop its agent (it then leaves) before removing it", name, st)
	}
	rs := []*catalog.Record{hr}
	for _, r := range ms.r.List(catalog.KindMachine) {
		if r.Machine.Host == name {
			rs = append(rs, r)
		}
	}
	for _, r := range ms.r.List(catalog.KindPeer) {
		if r.Peer.Gateway == name {
			rs = append(rs, r)
		}
	}
	return tombstone(ms.w, rs...)
}
