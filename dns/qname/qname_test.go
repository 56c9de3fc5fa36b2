package qname

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		want Query
	}{
		{"internal.", Query{Zone: Internal, Kind: Apex}},
		{"INTERNAL", Query{Zone: Internal, Kind: Apex}},
		{"web.internal.", Query{Zone: Internal, Kind: App, App: "web"}},
		{"Web.Internal", Query{Zone: Internal, Kind: App, App: "web"}},
		{"global.web.internal.", Query{Zone: Internal, Kind: App, App: "web"}},
		{"ord.web.internal.", Query{Zone: Internal, Kind: Region, App: "web", Region: "ord"}},
		{"top1.nearest.of.web.internal.", Query{Zone: Internal, Kind: Nearest, App: "web", N: 1}},
		{"top20.nearest.of.web.internal.", Query{Zone: Internal, Kind: Nearest, App: "web", N: 20}},
		{"top21.nearest.of.web.internal.", Query{Zone: Internal, App: "web"}},
		{"top0.nearest.of.web.internal.", Query{Zone: Internal, App: "web"}},
		{"top01.nearest.of.web.internal.", Query{Zone: Internal, App: "web"}},
		{"topx.nearest.of.web.internal.", Query{Zone: Internal, App: "web"}},
		{"nearest.of.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"of.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"0123456789abcd.vm.web.internal.", Query{Zone: Internal, Kind: VM, App: "web", ID: "0123456789abcd"}},
		{"0123456789ABCD.vm.web.internal.", Query{Zone: Internal, Kind: VM, App: "web", ID: "0123456789abcd"}},
		{"0123456789abc.vm.web.internal.", Query{Zone: Internal, App: "web"}},
		{"0123456789abcg.vm.web.internal.", Query{Zone: Internal, App: "web"}},
		{"vm.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"worker.process.web.internal.", Query{Zone: Internal, Kind: Process, App: "web", Group: "worker"}},
		{"process.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"primary.role.kv._metadata.web.internal.", Query{Zone: Internal, Kind: Meta, App: "web", Key: "role", Value: "primary"}},
		{"role.kv._metadata.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"kv._metadata.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"_metadata.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"_http._tcp.web.internal.", Query{Zone: Internal, Kind: Service, App: "web", Service: "http", Proto: "tcp"}},
		{"_tcp.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"http._tcp.web.internal.", Query{Zone: Internal, App: "web"}},
		{"alice._peer.internal.", Query{Zone: Internal, Kind: Peer, Peer: "alice"}},
		{"_peer.internal.", Query{Zone: Internal, Kind: Peers}},
		{"vms.web.internal.", Query{Zone: Internal, Kind: VMs, App: "web"}},
		{"all.vms.web.internal.", Query{Zone: Internal, Kind: VMs, App: "web", All: true}},
		{"regions.web.internal.", Query{Zone: Internal, Kind: Regions, App: "web"}},
		{"all.regions.web.internal.", Query{Zone: Internal, Kind: Regions, App: "web", All: true}},
		{"all.web.internal.", Query{Zone: Internal, Kind: Interior, App: "web"}},
		{"_apps.internal.", Query{Zone: Internal, Kind: Apps}},
		{"_instances.internal.", Query{Zone: Internal, Kind: Instances}},
		{"all._instances.internal.", Query{Zone: Internal, Kind: Instances, All: true}},
		{"x._instances.internal.", Query{Zone: Internal}},
		{"_records.internal.", Query{Zone: Internal, Kind: Records}},
		{"all._records.internal.", Query{Zone: Internal}},
		{"a.b.c.d.e.web.internal.", Query{Zone: Internal}},
		{"web..internal.", Query{Zone: Internal}},
		{"w\\.b.internal.", Query{Zone: Internal}},
		{"web\\.internal.", Query{Zone: External}},
		{"web\\\\.internal.", Query{Zone: Internal}},
		{"x\\.a.a.d.f.ip6.arpa.", Query{Zone: Reverse}},
		{"a.a.d.f\\.ip6.arpa.", Query{Zone: External}},
		{"x.internal.", Query{Zone: Internal, Kind: App, App: "x"}},
		{"we!b.internal.", Query{Zone: Internal}},
		{"example.com.", Query{Zone: External}},
		{"internal.example.com.", Query{Zone: External}},
		{"xinternal.", Query{Zone: External}},
		{".", Query{Zone: External}},
		{"", Query{Zone: External}},
		{"1.0.0.127.in-addr.arpa.", Query{Zone: External}},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", Query{Zone: External}},
		{"d.f.ip6.arpa.", Query{Zone: External}},
		{"a.a.d.f.ip6.arpa.", Query{Zone: Reverse, Kind: ReverseInterior, Prefix: netip.MustParsePrefix("fdaa::/16")}},
		{"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", Query{Zone: Reverse, Kind: ReverseInterior, Prefix: netip.MustParsePrefix("fdaa:0:18::/48")}},
		{"2.0.0.0.b.3.8.b.6.6.0.f.d.7.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", Query{Zone: Reverse, Kind: PTR, Addr: netip.MustParseAddr("fdaa:0:18:a7b:7d:f066:b83b:2")}},
		{"2.0.0.0.B.3.8.B.6.6.0.F.D.7.0.0.B.7.A.0.8.1.0.0.0.0.0.0.A.A.D.F.IP6.ARPA", Query{Zone: Reverse, Kind: PTR, Addr: netip.MustParseAddr("fdaa:0:18:a7b:7d:f066:b83b:2")}},
		{"0.2.0.0.0.b.3.8.b.6.6.0.f.d.7.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", Query{Zone: Reverse}},
		{"20.0.0.b.3.8.b.6.6.0.f.d.7.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", Query{Zone: Reverse}},
		{"g.a.a.d.f.ip6.arpa.", Query{Zone: Reverse}},
	}
	for _, c := range cases {
		if got := Parse(c.name); got != c.want {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestParseNoAllocLowercase(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { _ = Parse("ord.web.internal.") })
	if n != 0 {
		t.Errorf("Parse allocates %v times for a lowercase name", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"web.internal.", "top3.nearest.of.web.internal.", "primary.role.kv._metadata.web.internal.",
		"_http._tcp.web.internal.", "alice._peer.internal.", "all._instances.internal.", "a.a.d.f.ip6.arpa.",
		"2.0.0.0.b.3.8.b.6.6.0.f.d.7.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", "example.com.", "\\000.internal."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q := Parse(name)
		lower := strings.ToLower(strings.TrimSuffix(name, "."))
		switch q.Zone {
		case Internal:
			if lower != "internal" && !strings.HasSuffix(lower, ".internal") {
				t.Fatalf("%q classified internal", name)
			}
		case Reverse:
			if !strings.HasSuffix(lower, "a.a.d.f.ip6.arpa") {
				t.Fatalf("%q classified reverse", name)
			}
			if q.Kind == PTR && !q.Addr.Is6() {
				t.Fatalf("%q: bad addr", name)
			}
		case External:
			if q.Kind != Unknown {
				t.Fatalf("%q external with kind %v", name, q.Kind)
			}
		}
		if q.Kind == Nearest && (q.N < 1 || q.N > MaxNearest) {
			t.Fatalf("%q: N=%d", name, q.N)
		}
		for _, s := range []string{q.App, q.Region, q.ID, q.Group, q.Key, q.Value, q.Service, q.Proto, q.Peer} {
			if strings.ContainsAny(s, ".\\") || s != strings.ToLower(s) {
				t.Fatalf("%q: field %q not a lowercase label", name, s)
			}
		}
		if q.Kind == VM && !isMachineID(q.ID) {
			t.Fatalf("%q: id %q", name, q.ID)
		}
	})
}
