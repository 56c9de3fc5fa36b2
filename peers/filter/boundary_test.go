package filter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/attach"
	"github.com/dogwood/dogwood/peers/internal/nstest"
	"github.com/dogwood/dogwood/peers/plan"
)

// probe reports whether a TCP connect or a UDP round trip to ap succeeds. The UDP
// reply may come from another of the host's addresses (a wildcard socket's source is
// whatever the route picks), so any reply counts.
func probe(proto string, ap netip.AddrPort, zone string) error {
	if proto == "tcp" {
		addr := ap.String()
		if zone != "" {
			addr = fmt.Sprintf("[%s%%%s]:%d", ap.Addr(), zone, ap.Port())
		}
		c, err := net.DialTimeout(proto, addr, 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := pc.WriteTo([]byte("ping"), &net.UDPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Zone: zone}); err != nil {
		return err
	}
	buf := make([]byte, 16)
	_, _, err = pc.ReadFrom(buf)
	return err
}

// TestTenantBoundary puts the host side of the filter in a namespace with one
// machine (on a veth) and one "WireGuard" ingress (a veth carrying the WireGuard
// interface's name, behind which a peer and a spoofing underlay neighbour live), runs
// listeners where agents run theirs (wildcard metrics, TCP API, gossip TCP and UDP,
// invite redemption, DNS), and checks from each tenant that only DNS on fdaa::3 and
// the tenant's own fdaa:<net>::3 answers, while a non-tenant source reaches
// everything (so a refused probe means the filter, not a dead listener).
func TestTenantBoundary(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	const net18, net19, hostID, field = 0x18, 0x19, 7, 0x10001
	mns, pns := nstest.Name("bm"), nstest.Name("bp")
	nstest.Netns(t, mns)
	nstest.Netns(t, pns)
	ip := func(args ...string) { nstest.Run(t, "ip", args...) }

	// The machine: veth named as the data plane names it, /112 addressing.
	mp := sixpn.MachinePrefix(net18, hostID, field)
	gw := mp.Addr().Next() // ::1, the host side
	maddr := gw.Next()     // ::2
	veth := plan.VethName(field)
	ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", mns)
	// No DAD: a tentative link-local address would refuse probes by itself.
	nstest.Run(t, "sysctl", "-qw", "net.ipv6.conf."+veth+".accept_dad=0")
	nstest.Run(t, "ip", "netns", "exec", mns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	ip("addr", "add", gw.String()+"/112", "dev", veth, "nodad")
	ip("addr", "add", "198.18.9.1/24", "dev", veth)
	ip("link", "set", veth, "up")
	ip("-n", mns, "addr", "add", maddr.String()+"/112", "dev", "eth0", "nodad")
	ip("-n", mns, "addr", "add", "198.18.9.2/24", "dev", "eth0")
	ip("-n", mns, "link", "set", "eth0", "up")
	ip("-n", mns, "-6", "route", "add", "default", "via", gw.String(), "dev", "eth0")
	ip("-n", mns, "route", "add", "default", "dev", "eth0")

	// "WireGuard": the peer of network 0x19 and an underlay neighbour behind it.
	wg := "dwbwg0"
	peer := netip.MustParseAddr(fmt.Sprintf("fdaa:0:%x:%x:0:a:0:2", net19, hostID))
	ip("link", "add", wg, "type", "veth", "peer", "name", "eth0", "netns", pns)
	nstest.Run(t, "sysctl", "-qw", "net.ipv6.conf."+wg+".accept_dad=0")
	ip("addr", "add", "198.18.8.1/24", "dev", wg)
	ip("link", "set", wg, "up")
	ip("-6", "route", "add", peer.String()+"/128", "dev", wg)
	ip("-n", pns, "addr", "add", peer.String()+"/128", "dev", "eth0", "nodad")
	ip("-n", pns, "addr", "add", "198.18.8.2/24", "dev", "eth0")
	ip("-n", pns, "link", "set", "eth0", "up")
	ip("-n", pns, "-6", "route", "add", "default", "via", linkLocal(t, wg).String(), "dev", "eth0")
	ip("-n", pns, "route", "add", "default", "via", "198.18.8.1")

	// The host's own addresses: DNS service addresses on lo, an underlay address.
	dnsAll := netip.MustParseAddr("fdaa::3")
	dns18 := netip.MustParseAddr("fdaa:0:18::3")
	dns19 := netip.MustParseAddr("fdaa:0:19::3")
	for _, a := range []netip.Addr{dnsAll, dns18, dns19} {
		ip("addr", "add", a.String()+"/128", "dev", "lo", "nodad")
	}
	// (No dummy driver everywhere: the "underlay" addresses sit on lo too.)
	ip("addr", "add", "198.18.0.1/32", "dev", "lo")
	ip("addr", "add", "2001:db8::1/128", "dev", "lo", "nodad")
	ip("link", "set", "lo", "up")

	// Listeners as an agent opens them: wildcard (dual-stack) for the ones an
	// operator configures with ":PORT", plus DNS.
	ports := map[string][]int{"tcp": {9946, 7000, 7946, 51821, 53}, "udp": {7946, 53}}
	for _, p := range ports["tcp"] {
		ln, err := net.Listen("tcp", fmt.Sprintf("[::]:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	for _, p := range ports["udp"] {
		pc, err := net.ListenPacket("udp", fmt.Sprintf("[::]:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				n, a, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], a)
			}
		}()
	}

	type target struct {
		addr netip.Addr
		zone string
	}
	targets := []target{{addr: dnsAll}, {addr: dns18}, {addr: dns19}, {addr: gw},
		{addr: netip.MustParseAddr("198.18.0.1")}, {addr: netip.MustParseAddr("2001:db8::1")},
		{addr: netip.MustParseAddr("198.18.8.1")}}
	// allowed says which (target, proto, port) a tenant of network net may reach.
	allowed := func(net uint32, a netip.Addr, port int) bool {
		if port != 53 {
			return false
		}
		return a == dnsAll || (net == net18 && a == dns18) || (net == net19 && a == dns19)
	}
	check := func(who, ns string, net uint32, extra []target, filtered bool) {
		var wg sync.WaitGroup
		for _, tg := range append(targets, extra...) {
			for proto, ps := range ports {
				for _, p := range ps {
					wg.Add(1)
					go func() {
						defer wg.Done()
						err := attach.InNamespace(ns, func() error { return probe(proto, netip.AddrPortFrom(tg.addr, uint16(p)), tg.zone) })
						want := !filtered || (allowed(net, tg.addr, p) && tg.zone == "")
						if want && err != nil {
							t.Errorf("%s → %s %v:%d: %v, want an answer", who, proto, tg.addr, p, err)
						}
						if !want && err == nil {
							t.Errorf("%s → %s %v:%d answered: the boundary leaks", who, proto, tg.addr, p)
						}
					}()
				}
			}
		}
		wg.Wait()
	}

	// Control first: from the host itself (not a tenant) every listener answers.
	for proto, ps := range ports {
		for _, p := range ps {
			if err := probe(proto, netip.AddrPortFrom(dns18, uint16(p)), ""); err != nil {
				t.Fatalf("control: host → %s %v:%d: %v", proto, dns18, p, err)
			}
		}
	}

	ll := []target{{addr: linkLocal(t, veth), zone: "eth0"}}
	// Without the filter every tenant reaches every listener: the topology works,
	// so what the filtered run refuses, the filter refused.
	check("machine (unfiltered)", mns, net18, ll, false)
	check("peer (unfiltered)", pns, net19, nil, false)
	if t.Failed() {
		t.FailNow()
	}

	f := New("")
	if _, err := f.Sync(Spec{WGIface: wg, Networks: []uint32{net18, net19},
		Machines: []plan.Machine{{HostIface: veth, Prefix: mp}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Delete() })

	// The machine, also at its gateway's link-local address on the veth.
	check("machine", mns, net18, ll, true)
	// The peer (network 0x19).
	check("peer", pns, net19, nil, true)

	// Counters show the tenant chain did the dropping.
	out := nstest.Run(t, "nft", "list", "chain", "inet", DefaultTable, "tenant")
	if !strings.Contains(out, "drop") || strings.Contains(out, "packets 0 bytes 0 drop") {
		t.Errorf("tenant chain dropped nothing:\n%s", out)
	}
}

// linkLocal waits for dev's link-local address (the kernel adds it shortly after
// the link comes up).
func linkLocal(t *testing.T, dev string) netip.Addr {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() {
				return p.Addr()
			}
		}
	}
	t.Fatal(errors.New("no link-local address on " + dev))
	return netip.Addr{}
}
