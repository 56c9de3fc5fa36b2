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
	return scope(l, src, ecsFrom(ecs))
}

func scope(l Listener, src netip.Addr, ecs ecsInfo) (uint32, Rule) {
	if p, ok := sixpn.Parse(l.Addr.Unmap()); ok && p.Net != 0 && p.Host == 0 && p.Field == 0 && p.Low == 3 {
		return p.Net, ByListener
	}
	if p, ok := sixpn.Parse(src.Unmap()); ok && p.Net != 0 {
		return p.Net, BySource
	}
	if !ecs.present || !l.Static {
		return 0, Refused
	}
	local := l.Addr.Unmap()
	if !local.IsLoopback() && !(local.IsUnspecified() && src.Unmap().IsLoopback()) {
		return 0, Refused
	}
	if ecs.family != 2 || ecs.mask < 48 || ecs.mask > 128 {
		return 0, Refused
	}
	if p, ok := sixpn.Parse(netip.AddrFrom16(ecs.addr)); ok && p.Net != 0 {
		return p.Net, BySubnet
	}
	return 0, Refused
}

// RefusedReason says why Scope refused a query, in the words an Extended DNS
// Error (RFC 8914) carries to the client: which network a query is for is
// never guessed, so a host's own query needs to name it.
func RefusedReason(l Listener, src netip.Addr, ecs *dns.EDNS0_SUBNET) string {
	return refusedReason(l, src, ecsFrom(ecs))
}

func refusedReason(l Listener, src netip.Addr, ecs ecsInfo) string {
	local := l.Addr.Unmap()
	loopback := l.Static && (local.IsLoopback() || (local.IsUnspecified() && src.Unmap().IsLoopback()))
	switch {
	case !ecs.present && loopback:
		return "which 6PN network? name it with EDNS Client Subnet of its /48 (dig +subnet=fdaa:0:18::/48), or use dogwood dig --org ORG"
	case !ecs.present:
		return ".internal answers machines (fdaa::3), peers (fdaa:<net>::3) and 6PN sources; on this host use a loopback dns-listen with EDNS Client Subnet, or dogwood dig --org ORG"
	case !loopback:
		return "EDNS Client Subnet names a network only on a loopback dns-listen of this host"
	}
	return "EDNS Client Subnet must be a 6PN prefix of length 48 or more (fdaa:<net>::/48)"
}
