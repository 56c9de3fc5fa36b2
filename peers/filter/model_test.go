package filter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// recorder keeps what build would send to the kernel.
type recorder struct {
	sets   map[string][]nftables.SetElement
	chains map[string]*nftables.Chain
	rules  map[string][]*nftables.Rule
}

func (r *recorder) AddSet(s *nftables.Set, vals []nftables.SetElement) error {
	r.sets[s.Name] = vals
	return nil
}

func (r *recorder) AddChain(c *nftables.Chain) *nftables.Chain {
	r.chains[c.Name] = c
	return c
}

func (r *recorder) AddRule(rule *nftables.Rule) *nftables.Rule {
	r.rules[rule.Chain.Name] = append(r.rules[rule.Chain.Name], rule)
	return rule
}

func record(t *testing.T, spec Spec) *recorder {
	t.Helper()
	r := &recorder{sets: map[string][]nftables.SetElement{}, chains: map[string]*nftables.Chain{}, rules: map[string][]*nftables.Rule{}}
	if err := build(r, &nftables.Table{Family: nftables.TableFamilyINet, Name: DefaultTable}, spec); err != nil {
		t.Fatal(err)
	}
	return r
}

// pkt is an IPv6 (or, with v4, IPv4) packet as the hooks see it.
type pkt struct {
	iif, oif string
	v4       bool
	src, dst netip.Addr
	proto    byte
	dport    uint16
	icmpType byte
	ct       uint32
}

// eval runs the chain hooked at hook the way the kernel's nf_tables does for the
// expressions build uses, and reports whether the packet survives it.
func (r *recorder) eval(t *testing.T, hook *nftables.ChainHook, p pkt) bool {
	t.Helper()
	for name, ch := range r.chains {
		if ch.Hooknum != nil && *ch.Hooknum == *hook {
			v := r.run(t, name, p)
			return v != expr.VerdictDrop
		}
	}
	return true // no chain at this hook: nothing of ours drops
}

func (r *recorder) run(t *testing.T, chain string, p pkt) expr.VerdictKind {
	t.Helper()
	for _, rule := range r.rules[chain] {
		var regs [5 * 16]byte
		reg := func(n uint32) []byte { return regs[(n-1)*16:] }
		matched := true
		var verdict *expr.Verdict
	exprs:
		for _, e := range rule.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				d := reg(e.Register)
				clear(d[:16])
				switch e.Key {
				case expr.MetaKeyIIFNAME:
					copy(d, ifname(p.iif))
				case expr.MetaKeyOIFNAME:
					copy(d, ifname(p.oif))
				case expr.MetaKeyNFPROTO:
					d[0] = unix.NFPROTO_IPV6
					if p.v4 {
						d[0] = unix.NFPROTO_IPV4
					}
				case expr.MetaKeyL4PROTO:
					d[0] = p.proto
				default:
					t.Fatalf("model lacks meta key %v", e.Key)
				}
			case *expr.Payload:
				d := reg(e.DestRegister)
				clear(d[:16])
				switch {
				case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 8 && e.Len == 16:
					copy(d, p.src.AsSlice())
				case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 24 && e.Len == 16:
					copy(d, p.dst.AsSlice())
				case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2 && e.Len == 2:
					binary.BigEndian.PutUint16(d, p.dport)
				case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 0 && e.Len == 1:
					d[0] = p.icmpType
				default:
					t.Fatalf("model lacks payload %+v", e)
				}
			case *expr.Ct:
				if e.Key != expr.CtKeySTATE {
					t.Fatalf("model lacks ct key %v", e.Key)
				}
				binary.NativeEndian.PutUint32(reg(e.Register), p.ct)
			case *expr.Bitwise:
				s, d := reg(e.SourceRegister), reg(e.DestRegister)
				for i := uint32(0); i < e.Len; i++ {
					d[i] = s[i]&e.Mask[i] ^ e.Xor[i]
				}
			case *expr.Cmp:
				eq := bytes.Equal(reg(e.Register)[:len(e.Data)], e.Data)
				if (e.Op == expr.CmpOpEq) != eq {
					matched = false
					break exprs
				}
				if e.Op != expr.CmpOpEq && e.Op != expr.CmpOpNeq {
					t.Fatalf("model lacks cmp op %v", e.Op)
				}
			case *expr.Lookup:
				elems, ok := r.sets[e.SetName]
				if !ok {
					t.Fatalf("lookup in unknown set %q", e.SetName)
				}
				found := false
				for _, el := range elems {
					if bytes.Equal(reg(e.SourceRegister)[:len(el.Key)], el.Key) {
						found = true
					}
				}
				if found == e.Invert {
					matched = false
					break exprs
				}
			case *expr.Counter:
			case *expr.Verdict:
				verdict = e
			default:
				t.Fatalf("model lacks expression %T", e)
			}
		}
		if !matched || verdict == nil {
			continue
		}
		switch verdict.Kind {
		case expr.VerdictAccept, expr.VerdictDrop:
			return verdict.Kind
		case expr.VerdictJump:
			if v := r.run(t, verdict.Chain, p); v != expr.VerdictReturn {
				return v
			}
		default:
			t.Fatalf("model lacks verdict %v", verdict.Kind)
		}
	}
	if c := r.chains[chain]; c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
		return expr.VerdictDrop
	}
	if r.chains[chain].Hooknum == nil {
		return expr.VerdictReturn
	}
	return expr.VerdictAccept
}

// Paths through the host: a packet that arrives and is forwarded, one that
// arrives for the host, and one the host sends.
func (r *recorder) forwarded(t *testing.T, p pkt) bool {
	return r.eval(t, nftables.ChainHookPrerouting, p) && r.eval(t, nftables.ChainHookForward, p) &&
		r.eval(t, nftables.ChainHookPostrouting, p)
}

func (r *recorder) delivered(t *testing.T, p pkt) bool {
	return r.eval(t, nftables.ChainHookPrerouting, p) && r.eval(t, nftables.ChainHookInput, p)
}

func (r *recorder) sent(t *testing.T, p pkt) bool {
	return r.eval(t, nftables.ChainHookOutput, p) && r.eval(t, nftables.ChainHookPostrouting, p)
}

// TestRulesetModel checks the table build writes, root-free, by running packets
// through a model of the nf_tables expressions it uses: a rule that accepts too much
// (or the loss of one that drops) fails here without a namespace.
func TestRulesetModel(t *testing.T) {
	const net18, net19, hostID, otherHost = 0x18, 0x19, 7, 9
	m1 := plan.Machine{HostIface: plan.VethName(0x10001), Prefix: sixpn.MachinePrefix(net18, hostID, 0x10001),
		Addr: sixpn.MachineAddr(net18, hostID, 0x10001)}
	m3 := plan.Machine{HostIface: plan.VethName(0x10003), Prefix: sixpn.MachinePrefix(net19, hostID, 0x10003),
		Addr: sixpn.MachineAddr(net19, hostID, 0x10003)}
	r := record(t, Spec{WGIface: "dogwood0", Networks: []uint32{net18, net19}, Machines: []plan.Machine{m1, m3}})

	remote18 := sixpn.MachineAddr(net18, otherHost, 0x10002) // a machine of m1's org on another host
	gw1 := sixpn.MachineGateway(net18, hostID, 0x10001)
	dnsAll := netip.MustParseAddr("fdaa::3")
	dns18 := netip.MustParseAddr("fdaa:0:18::3")
	under1, under2 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	udp := func(iif, oif string, src, dst netip.Addr, port uint16) pkt {
		return pkt{iif: iif, oif: oif, src: src, dst: dst, proto: unix.IPPROTO_UDP, dport: port}
	}
	for _, tc := range []struct {
		name string
		path func(*testing.T, pkt) bool
		p    pkt
		want bool
	}{
		// The working paths.
		{"machine to remote machine of its network", r.forwarded, udp(m1.HostIface, "dogwood0", m1.Addr, remote18, 7777), true},
		{"remote machine to local machine", r.forwarded, udp("dogwood0", m1.HostIface, remote18, m1.Addr, 7777), true},
		{"machine to DNS", r.delivered, udp(m1.HostIface, "", m1.Addr, dnsAll, 53), true},
		{"remote machine to network DNS", r.delivered, udp("dogwood0", "", remote18, dns18, 53), true},
		{"host to its machine", r.sent, udp("", m1.HostIface, gw1, m1.Addr, 8080), true},
		{"host to a remote machine", r.sent, udp("", "dogwood0", dns18, remote18, 8080), true},
		{"host on loopback", r.sent, udp("", "lo", dnsAll, dnsAll, 53), true},
		{"underlay traffic", r.delivered, udp("eth0", "", under2, under1, 7946), true},
		{"underlay traffic out", r.sent, udp("", "eth0", under1, under2, 7946), true},
		{"IPv4 underlay", r.delivered, pkt{iif: "eth0", v4: true, proto: unix.IPPROTO_UDP, dport: 7946}, true},
		// Isolation that held before.
		{"machine to another network", r.forwarded, udp(m1.HostIface, m3.HostIface, m1.Addr, m3.Addr, 7777), false},
		{"machine forging another machine's source", r.forwarded, udp(m1.HostIface, "dogwood0", remote18, sixpn.MachineAddr(net18, otherHost, 0x10005), 7777), false},
		{"machine to a host port", r.delivered, udp(m1.HostIface, "", m1.Addr, gw1, 7946), false},
		{"WireGuard with an underlay source", r.forwarded, udp("dogwood0", m1.HostIface, under2, m1.Addr, 7777), false},
		// Issue 21, item 5: ::1 of the machine's own /112 is the host's, not the machine's.
		{"machine sending from its gateway address", r.forwarded, udp(m1.HostIface, "dogwood0", gw1, remote18, 7777), false},
		{"machine sending from ::3 of its /112", r.forwarded, udp(m1.HostIface, "dogwood0", m1.Addr.Next(), remote18, 7777), false},
		// Issue 21, item 1: 6PN from the underlay, and 6PN out of it.
		{"underlay spoof forwarded to a machine", r.forwarded, udp("eth0", m1.HostIface, remote18, m1.Addr, 7777), false},
		{"underlay spoof to DNS", r.delivered, udp("eth0", "", remote18, dnsAll, 53), false},
		{"underlay spoof to network DNS", r.delivered, udp("eth0", "", remote18, dns18, 53), false},
		{"underlay 6PN destination from an underlay source", r.forwarded, udp("eth0", m1.HostIface, under2, m1.Addr, 7777), false},
		{"underlay spoof routed back out", r.forwarded, udp("eth0", "eth0", remote18, sixpn.MachineAddr(net18, otherHost, 0x10005), 7777), false},
		{"6PN source sent out of the underlay", r.sent, udp("", "eth0", dns18, under2, 53), false},
		{"6PN destination sent out of the underlay", r.sent, udp("", "eth0", under1, remote18, 53), false},
		{"machine traffic routed out of the underlay", r.forwarded, udp(m1.HostIface, "eth0", m1.Addr, remote18, 7777), false},
		{"a veth that is not a machine's", r.forwarded, udp("veth0", m1.HostIface, remote18, m1.Addr, 7777), false},
	} {
		if got := tc.path(t, tc.p); got != tc.want {
			t.Errorf("%s (%s→%s via %q/%q): passes=%v, want %v", tc.name, tc.p.src, tc.p.dst, tc.p.iif, tc.p.oif, got, tc.want)
		}
	}
	if t.Failed() {
		for _, name := range []string{"prerouting", "forward", "postrouting", "input", "tenant"} {
			for _, rule := range r.rules[name] {
				t.Logf("%s: %s", name, describe(rule.Exprs))
			}
		}
	}
}

func describe(es []expr.Any) string {
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "%T%+v ", e, e)
	}
	return b.String()
}
