// Package filter owns 6PN isolation in nftables: one table of its own (family inet,
// default name "dogwood"), never touching any other table. It enforces SPEC §5:
//
//   - a packet is forwarded between 6PN addresses only when source and destination
//     are in the same network /48 (machine↔machine on one host or across hosts,
//     peer↔machine, peer↔peer), and the host's own per-network 6PN addresses
//     (fdaa:<net>::3, veth gateways) only answer their own network;
//   - a machine may only send from its own address, ::2 of its /112 (checked on its
//     veth before routing, so it covers forwarded traffic and traffic to the local DNS
//     server alike); ::1, the host's side of the link, is not the machine's to use;
//   - 6PN exists only on loopback, machine veths and the WireGuard interface: a
//     packet with an fdaa::/16 source or destination that arrives on any other
//     interface (the underlay) is dropped before routing, and one routed out of any
//     other interface is dropped before it leaves. Without this, anyone on the
//     underlay segment could hand the host a frame "from" a machine of another host
//     and have it forwarded to a local machine, or answered into WireGuard;
//   - WireGuard ingress must come from 6PN. Which 6PN source each remote host or
//     user peer may use is enforced by WireGuard itself: its cryptokey routing drops
//     any packet whose source is outside the sending peer's allowed IPs, which the
//     planner sets to exactly that host's /80s or that peer's /120;
//   - the tenant boundary (SPEC §3): whatever a packet addressed to the host itself
//     arrives on (a machine's veth, the WireGuard interface) or comes from (any 6PN
//     source), it reaches only DNS (UDP/TCP 53) on fdaa::3 or its own network's
//     fdaa:<net>::3, plus the ICMPv6 that IPv6 needs. Metrics, the TCP API, gossip,
//     invite redemption and anything an operator starts later are unreachable from
//     tenants whatever address or port they bind.
//
// The rule count is constant. What grows is two sets: one element per local network
// ("same network" is a lookup of saddr/48 . daddr/48 in a set of fdaa:N:: . fdaa:N::
// pairs, since nftables cannot compare two packet fields directly) and one per
// attached machine (veth name . source address). The whole table is replaced in one
// netlink transaction, so a change never opens a window without filtering.
package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// DefaultTable is the name of Dogwood's table in family inet.
const DefaultTable = "dogwood"

// Spec is what the filter enforces.
type Spec struct {
	// WGIface is the WireGuard interface.
	WGIface string
	// Networks are the ids of networks with local machines or peers.
	Networks []uint32
	// Machines are the local attachments (veth name and /112).
	Machines []plan.Machine
}

func (s Spec) equal(o Spec) bool {
	return s.WGIface == o.WGIface && slices.Equal(s.Networks, o.Networks) &&
		slices.EqualFunc(s.Machines, o.Machines, func(a, b plan.Machine) bool {
			return a.HostIface == b.HostIface && a.Prefix == b.Prefix && a.Addr == b.Addr
		})
}

// machineAddr is the one source a machine may use: its Addr, or ::2 of its /112
// when the caller gave only the prefix.
func machineAddr(m plan.Machine) netip.Addr {
	if m.Addr.IsValid() {
		return m.Addr
	}
	return m.Prefix.Masked().Addr().Next().Next()
}

// ruleset is the part of *nftables.Conn that build writes to; a test records it
// to check the rules without root.
type ruleset interface {
	AddSet(s *nftables.Set, vals []nftables.SetElement) error
	AddChain(c *nftables.Chain) *nftables.Chain
	AddRule(r *nftables.Rule) *nftables.Rule
}

// Filter programs the table in the network namespace it was created in.
type Filter struct {
	table string
	mu    sync.Mutex
	last  *Spec
}

// New returns a Filter for table name (DefaultTable if empty).
func New(table string) *Filter {
	if table == "" {
		table = DefaultTable
	}
	return &Filter{table: table}
}

// Table is the table's name.
func (f *Filter) Table() string { return f.table }

// Sync installs spec, replacing the table atomically when spec changed or the table
// disappeared (someone ran `nft flush ruleset`).
func (f *Filter) Sync(spec Spec) (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	if f.last != nil && f.last.equal(spec) {
		if _, err := c.ListTableOfFamily(f.table, nftables.TableFamilyINet); err == nil {
			return false, nil
		}
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: f.table}
	// add+delete+add is nft's idiom for "replace whether or not it exists", all in
	// the one transaction that Flush commits.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	if err := build(c, t, spec); err != nil {
		return false, err
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("install nftables table inet %s: %w", f.table, err)
	}
	s := spec
	s.Networks = slices.Clone(spec.Networks)
	s.Machines = slices.Clone(spec.Machines)
	f.last = &s
	return true, nil
}

// Delete removes the table (full teardown). A missing table is not an error.
func (f *Filter) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = nil
	c, err := nftables.New()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	if _, err := c.ListTableOfFamily(f.table, nftables.TableFamilyINet); err != nil {
		return nil
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: f.table})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table inet %s: %w", f.table, err)
	}
	return nil
}

const (
	regA = 1 // NFT_REG_1: 16 bytes, followed in memory by regB, so A.B is a concat key
	regB = 2
)

var (
	mask48  = net.CIDRMask(48, 128)
	mask128 = net.CIDRMask(128, 128)
	mask16  = net.CIDRMask(16, 128)
	mask10  = net.CIDRMask(10, 128)
	zero16  = make([]byte, 16)
	sixpn16 = sixpn.Prefix().Addr().AsSlice()
	ll      = netip.MustParseAddr("fe80::").AsSlice()
	dnsAll  = netip.MustParseAddr("fdaa::3").AsSlice() // DNS as machines see it
	dnsLow  = netip.MustParseAddr("::3").AsSlice()     // fdaa:<net>::3 below the /48
	// hostPart48 keeps the 80 bits below a network's /48.
	hostPart48 = net.IPMask{0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// allowedICMPv6 is what IPv6 needs from a tenant (RFC 4890): errors (path MTU
// discovery needs packet-too-big), echo replies, and neighbour discovery. Echo
// requests have rules of their own; router advertisements and redirects are not a
// tenant's to send.
var allowedICMPv6 = []byte{1, 2, 3, 4, 129, 133, 135, 136}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regA},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: []byte{p}},
	}
}

// dport matches the TCP or UDP destination port (both sit at offset 2).
func dport(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: regA, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: []byte{byte(p >> 8), byte(p)}},
	}
}

// ctState matches when the connection-tracking state has any of bits.
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: regA, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: regA, DestRegister: regA, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: regA, Data: []byte{0, 0, 0, 0}},
	}
}

func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func isIPv6() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: regA},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: []byte{unix.NFPROTO_IPV6}},
	}
}

func notIPv6() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: regA},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: regA, Data: []byte{unix.NFPROTO_IPV6}},
	}
}

// addr loads ip6 saddr (src) or daddr, masked, into reg.
func addr(src bool, mask net.IPMask, reg uint32) []expr.Any {
	off := uint32(24)
	if src {
		off = 8
	}
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 16},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 16, Mask: mask, Xor: zero16},
	}
}

func addrIs(src bool, mask net.IPMask, value []byte, eq bool) []expr.Any {
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	return append(addr(src, mask, regA), &expr.Cmp{Op: op, Register: regA, Data: value})
}

func iifnamePrefix(p string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regA},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: []byte(p)},
	}
}

func iifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regA},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: ifname(name)},
	}
}

func oifnamePrefix(p string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: regA},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: []byte(p)},
	}
}

func oifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: regA},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: ifname(name)},
	}
}

// UnderlayComment marks the rules that drop 6PN on any other interface, so an
// operator (and the e2e suite) can read their counters with `nft list table`.
const UnderlayComment = "6pn-off-underlay"

func commented(r *nftables.Rule, comment string) *nftables.Rule {
	r.UserData = userdata.AppendString(nil, userdata.TypeComment, comment)
	return r
}

func sameNet(set *nftables.Set, invert bool) []expr.Any {
	return append(append(addr(true, mask48, regA), addr(false, mask48, regB)...),
		&expr.Lookup{SourceRegister: regA, SetName: set.Name, SetID: set.ID, Invert: invert})
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: k}}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func build(c ruleset, t *nftables.Table, spec Spec) error {
	samenet := &nftables.Set{Table: t, Name: "samenet", Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr)}
	var nets []nftables.SetElement
	for _, n := range spec.Networks {
		a := sixpn.NetworkPrefix(n).Addr().AsSlice()
		nets = append(nets, nftables.SetElement{Key: append(slices.Clone(a), a...)})
	}
	if err := c.AddSet(samenet, nets); err != nil {
		return fmt.Errorf("samenet set: %w", err)
	}
	msrc := &nftables.Set{Table: t, Name: "machine_src", Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)}
	var ms []nftables.SetElement
	for _, m := range spec.Machines {
		ms = append(ms, nftables.SetElement{Key: append(ifname(m.HostIface), machineAddr(m).AsSlice()...)})
	}
	if err := c.AddSet(msrc, ms); err != nil {
		return fmt.Errorf("machine_src set: %w", err)
	}

	accept := nftables.ChainPolicyAccept
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: prio, Policy: &accept})
	}
	rule := func(ch *nftables.Chain, e ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(e...)})
	}

	// Sources, before routing decides between forward and input. Policy accept: we
	// only drop what is ours to judge.
	pre := chain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityRef(-150))
	veth := iifnamePrefix(plan.VethPrefix)
	rule(pre, veth, notIPv6(), verdict(expr.VerdictDrop))
	// Neighbour discovery uses link-local sources and DAD the unspecified one; the
	// kernel never forwards either, so letting them in gives a machine nothing.
	rule(pre, veth, isIPv6(), addrIs(true, mask10, ll, true), verdict(expr.VerdictAccept))
	rule(pre, veth, isIPv6(), addrIs(true, net.CIDRMask(128, 128), zero16, true), verdict(expr.VerdictAccept))
	rule(pre, veth, isIPv6(), []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regA},
	}, addr(true, mask128, regB), []expr.Any{
		&expr.Lookup{SourceRegister: regA, SetName: msrc.Name, SetID: msrc.ID, Invert: true},
	}, verdict(expr.VerdictDrop))
	if spec.WGIface != "" {
		wg := iifname(spec.WGIface)
		rule(pre, wg, notIPv6(), verdict(expr.VerdictDrop))
		rule(pre, wg, isIPv6(), addrIs(true, mask16, sixpn16, false), verdict(expr.VerdictDrop))
	}
	// 6PN lives only on the interfaces above (what passed their checks is done here);
	// anywhere else an fdaa:: source or destination is a spoof from the underlay.
	sixpnIfaces := func(ch *nftables.Chain, lo, veth []expr.Any, wg func(string) []expr.Any) {
		rule(ch, lo, verdict(expr.VerdictAccept))
		rule(ch, veth, verdict(expr.VerdictAccept))
		if spec.WGIface != "" {
			rule(ch, wg(spec.WGIface), verdict(expr.VerdictAccept))
		}
		for _, src := range []bool{true, false} {
			c.AddRule(commented(&nftables.Rule{Table: t, Chain: ch,
				Exprs: cat(isIPv6(), addrIs(src, mask16, sixpn16, true), verdict(expr.VerdictDrop))}, UnderlayComment))
		}
	}
	sixpnIfaces(pre, iifname("lo"), veth, iifname)
	post := chain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityFilter)
	sixpnIfaces(post, oifname("lo"), oifnamePrefix(plan.VethPrefix), oifname)

	fwd := chain("forward", nftables.ChainHookForward, nftables.ChainPriorityFilter)
	rule(fwd, isIPv6(), sameNet(samenet, false), verdict(expr.VerdictAccept))
	rule(fwd, isIPv6(), addrIs(true, mask16, sixpn16, true), verdict(expr.VerdictDrop))
	rule(fwd, isIPv6(), addrIs(false, mask16, sixpn16, true), verdict(expr.VerdictDrop))

	// The tenant boundary (SPEC §3): a packet to the host itself that comes from a
	// machine (its veth), from WireGuard (a peer or another host's machine) or with
	// any 6PN source reaches only DNS on fdaa::3 / its own fdaa:<net>::3, plus the
	// ICMPv6 IPv6 needs. Matching by ingress interface as well as by source covers
	// every address the host owns (underlay, veth gateways, link-local, fdaa::3) and
	// every port a service binds, wildcard listeners included.
	tenant := c.AddChain(&nftables.Chain{Name: "tenant", Table: t})
	icmpOK := &nftables.Set{Table: t, Name: "icmp6_ok", Constant: true, KeyType: nftables.TypeICMP6Type}
	var types []nftables.SetElement
	for _, ty := range allowedICMPv6 {
		types = append(types, nftables.SetElement{Key: []byte{ty}})
	}
	if err := c.AddSet(icmpOK, types); err != nil {
		return fmt.Errorf("icmp6_ok set: %w", err)
	}
	// Replies to connections the host opened (an operator's curl to a machine).
	rule(tenant, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(tenant, l4proto(unix.IPPROTO_ICMPV6), []expr.Any{
		&expr.Payload{DestRegister: regA, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Lookup{SourceRegister: regA, SetName: icmpOK.Name, SetID: icmpOK.ID},
	}, verdict(expr.VerdictAccept))
	// Echo (diagnostics) only toward addresses of the tenant's own network.
	echo := cat(l4proto(unix.IPPROTO_ICMPV6), []expr.Any{
		&expr.Payload{DestRegister: regA, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regA, Data: []byte{128}},
	})
	rule(tenant, echo, addrIs(false, net.CIDRMask(128, 128), dnsAll, true), verdict(expr.VerdictAccept))
	rule(tenant, echo, sameNet(samenet, false), verdict(expr.VerdictAccept))
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		rule(tenant, l4proto(proto), dport(53), addrIs(false, net.CIDRMask(128, 128), dnsAll, true), verdict(expr.VerdictAccept))
		rule(tenant, l4proto(proto), dport(53), addrIs(false, hostPart48, dnsLow, true), sameNet(samenet, false), verdict(expr.VerdictAccept))
	}
	rule(tenant, verdict(expr.VerdictDrop))

	in := chain("input", nftables.ChainHookInput, nftables.ChainPriorityFilter)
	rule(in, iifname("lo"), verdict(expr.VerdictAccept))
	toTenant := []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: tenant.Name}}
	rule(in, veth, toTenant)
	if spec.WGIface != "" {
		rule(in, iifname(spec.WGIface), toTenant)
	}
	rule(in, isIPv6(), addrIs(true, mask16, sixpn16, true), toTenant)
	return nil
}
