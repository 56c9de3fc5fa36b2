package server

import (
	"net/netip"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Listener describes where a query arrived, for scoping.
type Listener struct {
	// Addr is the address the socket is bound to (maybe unspecified).
	Addr netip.Addr
	// Static is set for --dns-listen addresses; only those may honour ECS.
	Static bool
}

// Rule says which SPEC §4 scoping rule decided a query's network.
type Rule uint8

const (
	// Refused: no rule matched.
	Refused Rule = iota
	// ByListener: the query was sent to fdaa:<net>::3.
	ByListener
	// BySource: the source address is a 6PN address.
	BySource
	// BySubnet: a loopback --dns-listen listener with an EDNS Client Subnet option.
	BySubnet
)

// Scope applies SPEC §4's rules in order and returns the network a query is for.
//
// ECS is trusted only on a static loopback listener, or on a static wildcard listener
// when the packet itself came from loopback: anything that can reach such a socket
// already runs on this host. On any other listener ECS is ignored, so a remote
// client cannot claim a network by writing an option.
func Scope(l Listener, src netip.Addr, ecs *dns.EDNS0_SUBNET) (uint32, Rule) {
	if p, ok := sixpn.Parse(l.Addr.Unmap()); ok && p.Net != 0 && p.Host == 0 && p.Field == 0 && p.Low == 3 {
		return p.Net, ByListener
	}
	if p, ok := sixpn.Parse(src.Unmap()); ok && p.Net != 0 {
		return p.Net, BySource
	}
	if ecs == nil || !l.Static {
		return 0, Refused
	}
	local := l.Addr.Unmap()
	if !local.IsLoopback() && !(local.IsUnspecified() && src.Unmap().IsLoopback()) {
		return 0, Refused
	}
	if ecs.Family != 2 || ecs.SourceNetmask < 48 || ecs.SourceNetmask > 128 {
		return 0, Refused
	}
	a, ok := netip.AddrFromSlice(ecs.Address.To16())
	if !ok {
		return 0, Refused
	}
	if p, ok := sixpn.Parse(a); ok && p.Net != 0 {
		return p.Net, BySubnet
	}
	return 0, Refused
}
