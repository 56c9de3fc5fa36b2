package server

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// hotForms are the query forms an answering host sees most; each must be answered
// without unpacking and without allocating.
var hotForms = []struct {
	name  string
	qtype uint16
}{
	{"web.internal", dns.TypeAAAA},
	{"ord.web.internal", dns.TypeAAAA},
	{"top2.nearest.of.web.internal", dns.TypeAAAA},
	{"_http._tcp.web.internal", dns.TypeSRV},
	{"vms.web.internal", dns.TypeTXT},
	{dnstest.WebOrd + ".vm.web.internal", dns.TypeAAAA},
	{"app.process.web.internal", dns.TypeAAAA},
	{"nope.internal", dns.TypeAAAA}, // NXDOMAIN
	{"www.internal", dns.TypeAAAA},  // custom ALIAS
	{"WEB.Internal", dns.TypeAAAA},  // any case
	{"web.internal", dns.TypeMX},    // NODATA
	{"alice._peer.internal", dns.TypeAAAA},
}

func fixtureServer(t testing.TB) *Server { return serverOn(t, dnstest.Fixture()) }

func serverOn(t testing.TB, snap *catalog.Snapshot) *Server {
	t.Helper()
	s, err := New(Config{
		Source:     resolve.StaticSource{Snap: snap},
		Nearness:   dnstest.FixtureNear,
		Upstreams:  []string{"127.0.0.1:1"},
		ResolvConf: "/nonexistent",
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Resolver().Refresh()
	return s
}

var (
	loListener = Listener{Addr: netip.MustParseAddr("127.0.0.1"), Static: true}
	loSrc      = netip.MustParseAddr("127.0.0.1")
)

// TestAnswerAllocs: the common forms are answered from wire format with no
// allocation once the indexes and buffers are warm (counted, not timed).
func TestAnswerAllocs(t *testing.T) {
	s := fixtureServer(t)
	sc := newScratch().(*scratch)
	for _, f := range hotForms {
		for _, withECS := range []bool{true, false} {
			m := msg(f.name, f.qtype, 1232)
			l, src := Listener{Addr: sixpn.NetworkDNS(dnstest.NetA)}, loSrc
			if withECS {
				m = msg(f.name, f.qtype, 1232, ecsOpt("fdaa:0:18::/48"))
				l = loListener
			}
			pkt, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			run := func() {
				out, _, _, ok := s.respondRaw(sc, pkt, l, src, false)
				if !ok || len(out) < headerLen {
					t.Fatalf("%s %s: not answered on the fast path", f.name, dns.TypeToString[f.qtype])
				}
				sc.buf = out[:0]
			}
			run() // warm: listings and chased answers are built by their first query
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Errorf("%s %s (ECS %v): %.1f allocations per query, want 0", f.name, dns.TypeToString[f.qtype], withECS, n)
			}
		}
	}
}

// TestFastPathMatchesUnpacked: for every shape of query, the packet path the UDP
// loop runs gives the same bytes as miekg/dns's unpacking followed by respond (two
// servers over one catalog, so address rotation moves in step).
func TestFastPathMatchesUnpacked(t *testing.T) {
	snap := dnstest.Fixture() // one snapshot: the SOA serial follows it
	fast, ref, probe := serverOn(t, snap), serverOn(t, snap), serverOn(t, snap)
	var pkts [][]byte
	names := []string{"internal", "web.internal", "global.web.internal", "ams.web.internal", "zzz.web.internal",
		"top1.nearest.of.web.internal", "top20.nearest.of.big.internal", "_grpc._tcp.web.internal", "all.vms.web.internal",
		"regions.web.internal", "_apps.internal", "_peer.internal", "_instances.internal", "all._instances.internal",
		"primary.role.kv._metadata.web.internal", "worker.process.web.internal", "big.internal", "_records.internal",
		"chain.internal", "cloop1.internal", "a.foo.dev.internal", "b.deep.internal", "long.internal", "gone.internal",
		"secret.internal", "2.0.0.0.1.0.0.0.1.0.0.0.d.7.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa",
		"a.a.d.f.ip6.arpa", "example.com", "*.dev.internal", `we\.b.internal`, "w_b.internal"}
	for _, f := range hotForms {
		names = append(names, f.name)
	}
	for _, name := range names {
		for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA, dns.TypeTXT, dns.TypeSRV, dns.TypeANY, dns.TypePTR, dns.TypeSOA, dns.TypeAXFR, 0} {
			for _, size := range []uint16{0, 512, 1232, 4096} {
				m := msg(name, qt, size)
				m.Id = uint16(len(pkts))
				m.CheckingDisabled = len(pkts)%3 == 0
				p, _ := m.Pack()
				pkts = append(pkts, p)
				m = msg(name, qt, size, ecsOpt("fdaa:0:18::/48"))
				m.SetEdns0(size+1, len(pkts)%2 == 0)
				p, _ = m.Pack()
				pkts = append(pkts, p)
			}
		}
	}
	// Odd shapes: classes, versions, several options, IPv4 ECS, trailing bytes.
	odd := msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/56"), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	p, _ := odd.Pack()
	pkts = append(pkts, p, append(append([]byte(nil), p...), 0))
	odd = msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("10.0.0.0/8"))
	p, _ = odd.Pack()
	pkts = append(pkts, p)
	odd = msg("web.internal", dns.TypeAAAA, 1232)
	odd.Question[0].Qclass = dns.ClassCHAOS
	p, _ = odd.Pack()
	pkts = append(pkts, p)
	odd = msg("web.internal", dns.TypeAAAA, 1232)
	odd.IsEdns0().SetVersion(1)
	p, _ = odd.Pack()
	pkts = append(pkts, p)

	fastTaken := 0
	for _, tcp := range []bool{false, true} {
		for _, l := range []struct {
			l   Listener
			src netip.Addr
		}{
			{loListener, loSrc},
			{Listener{Addr: sixpn.NetworkDNS(dnstest.NetA)}, loSrc},
			{Listener{Addr: sixpn.MachineDNS()}, netip.MustParseAddr("fdaa:0:19:1:2:3:4:2")},
			{Listener{Addr: netip.MustParseAddr("192.0.2.1"), Static: true}, netip.MustParseAddr("192.0.2.9")},
		} {
			for i, pkt := range pkts {
				got, _, _, _, _ := fast.respondPacket(context.Background(), newScratch().(*scratch), pkt, l.l, l.src, tcp)
				want := serveRaw(ref, l.l, l.src, tcp, pkt)
				if len(want) == 0 {
					continue // miekg/dns answered or dropped it itself
				}
				if _, _, _, ok := probe.respondRaw(newScratch().(*scratch), pkt, l.l, l.src, tcp); ok {
					fastTaken++
				}
				if !bytes.Equal(got, want) {
					var gm, wm dns.Msg
					gm.Unpack(got)
					wm.Unpack(want)
					t.Fatalf("packet %d (tcp %v, %v): fast path differs\ngot  %x\n%v\nwant %x\n%v", i, tcp, l.l, got, &gm, want, &wm)
				}
			}
		}
	}
	if fastTaken < len(pkts) {
		t.Errorf("only %d queries took the fast path", fastTaken) // the fast path must carry most of them
	}
	t.Logf("%d packets × 8 listener/transport cases; %d answered on the fast path", len(pkts), fastTaken)
}

// BenchmarkAnswer: one query of each common form through the path the UDP loop runs
// (parse the packet, scope, answer, encode), from wire format to wire format.
func BenchmarkAnswer(b *testing.B) {
	s := fixtureServer(b)
	for _, f := range hotForms[:5] {
		pkt, _ := msg(f.name, f.qtype, 1232, ecsOpt("fdaa:0:18::/48")).Pack()
		b.Run(fmt.Sprintf("%s/%s", f.name, dns.TypeToString[f.qtype]), func(b *testing.B) {
			sc := newScratch().(*scratch)
			b.ReportAllocs()
			for b.Loop() {
				out, _, _, ok := s.respondRaw(sc, pkt, loListener, loSrc, false)
				if !ok {
					b.Fatal("not answered")
				}
				sc.buf = out[:0]
			}
		})
	}
	pkt, _ := msg("nope.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48")).Pack()
	b.Run("nxdomain", func(b *testing.B) {
		sc := newScratch().(*scratch)
		b.ReportAllocs()
		for b.Loop() {
			out, _, _, _ := s.respondRaw(sc, pkt, loListener, loSrc, false)
			sc.buf = out[:0]
		}
	})
}

// TestSlipMatchesUnpacked: response-rate limiting's truncated reply built from wire
// format is the one built from the unpacked query.
func TestSlipMatchesUnpacked(t *testing.T) {
	s := fixtureServer(t)
	for _, f := range hotForms {
		m := msg(f.name, f.qtype, 1232, ecsOpt("fdaa:0:18::/48"))
		m.RecursionDesired = len(f.name)%2 == 0
		pkt, _ := m.Pack()
		var req dns.Msg
		if err := req.Unpack(pkt); err != nil {
			t.Fatal(err)
		}
		got := s.limitedPacket(newScratch().(*scratch), slip, pkt)
		want := s.limited(newScratch().(*scratch), slip, &req)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: slip %x, want %x", f.name, got, want)
		}
	}
}

// TestReusePortSockets: with several UDP sockets on one address (SO_REUSEPORT),
// queries from many source ports are all answered, large answers still come back
// truncated over UDP and whole over TCP, and Close ends every loop.
func TestReusePortSockets(t *testing.T) {
	e := start(t, func(c *Config) { c.UDPSockets = 3 })
	e.srv.mu.Lock()
	var n int
	for _, l := range e.srv.listeners {
		n += len(l.batch)
	}
	e.srv.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d batched UDP sockets, want 3", n)
	}
	for i := 0; i < 24; i++ { // a fresh client socket each: the kernel spreads them by source port
		r := exchange(t, e.addr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48")))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 {
			t.Fatalf("query %d: %v", i, r)
		}
	}
	r := exchange(t, e.addr, "udp", msg("big.internal", dns.TypeAAAA, 0, ecsOpt("fdaa:0:18::/48")))
	if !r.Truncated {
		t.Fatalf("big answer over UDP not truncated: %d records", len(r.Answer))
	}
	r = exchange(t, e.addr, "tcp", msg("big.internal", dns.TypeAAAA, 0, ecsOpt("fdaa:0:18::/48")))
	if r.Truncated || len(r.Answer) != dnstest.BigN {
		t.Fatalf("big answer over TCP: tc %v, %d records", r.Truncated, len(r.Answer))
	}
}
