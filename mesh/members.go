package mesh

import (
	"context"
	"fmt"
	"sort"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/release"
)

// MemberInfo is one host as `dogwood members` prints it.
type MemberInfo struct {
	Name      string `json:"name"`
	HostID    uint32 `json:"host_id"`
	HostIDHex string `json:"host_id_hex"`
	Region    string `json:"region"`
	Addr      string `json:"addr"`
	Status    string `json:"status"`
	Gateway   bool   `json:"gateway"`
	PublicKey string `json:"public_key"`
	Endpoint  string `json:"public_endpoint,omitempty"`
	// Version is the member's release as it advertises it ("0.3.0"), or what its
	// gossip tells ("0.2.0 or older"); "" when this host has not heard it.
	Version  string `json:"version"`
	Protocol int    `json:"protocol,omitempty"`
	// VersionProblem says why this host cannot exchange messages with the member.
	VersionProblem string `json:"version_problem,omitempty"`
}

// Members lists every host in the catalog with its membership status.
func (n *Node) Members() []MemberInfo {
	snap := n.cat.Snapshot()
	out := []MemberInfo{}
	vs := n.gossip.Versions()
	for _, h := range snap.Hosts {
		m := MemberInfo{
			Name: h.Name, HostID: h.ID, HostIDHex: fmt.Sprintf("%08x", h.ID), Region: h.Region,
			Addr: fmt.Sprintf("%s:%d", h.Addr, h.GossipPort), Status: h.Status, Gateway: h.Gateway,
			PublicKey: h.PublicKey, Endpoint: h.PublicEndpoint,
		}
		if h.Name == n.id.Name {
			m.Version, m.Protocol = release.Version, gossip.Protocol
		} else if mv, ok := vs.Member(h.Name); ok {
			m.Version, m.Protocol, m.VersionProblem = mv.Release, mv.Protocol, mv.Problem
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RemoveMember removes a host for good: its record, machines and peers are tombstoned.
// A live host must leave first (stop its agent), so a running host is never cut off
// by accident.
func (n *Node) RemoveMember(ctx context.Context, name string) error {
	if err := ValidHostName(name); err != nil {
		return err
	}
	if name == n.id.Name {
		return invalid("cannot remove this host from itself; run it on another host after stopping this agent")
	}
	hr := n.cat.Live(catalog.ID{Kind: catalog.KindHost, Key: name})
	if hr == nil {
		return notFound("host %q not found", name)
	}
	if st := n.cat.Status(name); catalog.Live(st) {
		return conflict("host %q is %s; stop its agent (it then leaves) before removing it", name, st)
	}
	rs := []*catalog.Record{hr}
	for _, r := range n.cat.List(catalog.KindMachine) {
		if r.Machine.Host == name {
			rs = append(rs, r)
		}
	}
	for _, r := range n.cat.List(catalog.KindPeer) {
		if r.Peer.Gateway == name {
			rs = append(rs, r)
		}
	}
	return n.tombstone(rs...)
}
