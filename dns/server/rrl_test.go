package server

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRRLDecisions(t *testing.T) {
	if newRRL(0, nil).decide(netip.MustParseAddr("192.0.2.1")) != answer {
		t.Fatal("RRL off must answer everything")
	}
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r := newRRL(5, clk.now)
	a := netip.MustParseAddr("192.0.2.1")
	sameNet := netip.MustParseAddr("192.0.2.200") // same /24: same bucket
	other := netip.MustParseAddr("198.51.100.1")
	var got []verdict
	for i := 0; i < 9; i++ {
		src := a
		if i%2 == 1 {
			src = sameNet
		}
		got = append(got, r.decide(src))
	}
	want := []verdict{answer, answer, answer, answer, answer, slip, drop, slip, drop}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("decisions %v, want %v", got, want)
		}
	}
	if r.decide(other) != answer {
		t.Error("another prefix was limited by the first one's flood")
	}
	clk.t = clk.t.Add(time.Second)
	for i := 0; i < 5; i++ {
		if v := r.decide(a); v != answer {
			t.Fatalf("after a second, answer %d: %v", i, v)
		}
	}
	v6a, v6b := netip.MustParseAddr("2001:db8:0:1::1"), netip.MustParseAddr("2001:db8:0:ff::9")
	if rrlPrefix(v6a) != rrlPrefix(v6b) || rrlPrefix(v6a).Bits() != 56 {
		t.Errorf("IPv6 /56: %v %v", rrlPrefix(v6a), rrlPrefix(v6b))
	}
}

// TestRRLOverUDP: with --dns-rrl 10, a burst of 40 UDP queries from one client
// gets 10 answers, about half the rest truncated (TC, empty) and the others no
// reply; without RRL (the default) all 40 are answered.
func TestRRLOverUDP(t *testing.T) {
	count := func(e *env) (full, tc, none int) {
		c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
		for i := 0; i < 40; i++ {
			r, _, err := c.Exchange(msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48")), e.addr)
			switch {
			case err != nil:
				none++
			case r.Truncated && len(r.Answer) == 0:
				tc++
			case len(r.Answer) == 3:
				full++
			default:
				t.Fatalf("unexpected answer: %v", r)
			}
		}
		return
	}
	if full, tc, none := count(start(t, nil)); full != 40 {
		t.Fatalf("RRL off: %d answered, %d truncated, %d unanswered", full, tc, none)
	}
	clk := &fakeClock{t: time.Unix(1000, 0)} // frozen: no refill during the burst
	full, tc, none := count(start(t, func(c *Config) { c.RRL = 10; c.Clock = clk.now }))
	t.Logf("RRL 10/s, 40 queries from one client: %d answered, %d truncated, %d dropped", full, tc, none)
	if full != 10 || tc != 15 || none != 15 {
		t.Fatalf("RRL 10/s: %d answered, %d truncated, %d unanswered; want 10, 15, 15", full, tc, none)
	}
}

// TestAmplificationFactor measures the largest UDP response-to-query size ratio the
// server gives on the test catalog (the README states it): responses are capped at
// MaxUDPSize (1232) however large the answer, so the bound is 1232 over the smallest
// query that fills it.
func TestAmplificationFactor(t *testing.T) {
	s, err := New(Config{Source: resolve.StaticSource{Snap: dnstest.Fixture()}, Nearness: dnstest.FixtureNear,
		Upstreams: []string{}, ResolvConf: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	l := Listener{Addr: sixpn.NetworkDNS(dnstest.NetA)}
	src := netip.MustParseAddr("fdaa:0:18:a7b:7d:0:a:2")
	best, bestName := 0.0, ""
	for _, name := range []string{"web.internal", "big.internal", "_http._tcp.web.internal", "all._instances.internal",
		"vms.web.internal", "_apps.internal", "_instances.internal", "regions.web.internal", "top2.nearest.of.web.internal"} {
		for _, q := range []uint16{dns.TypeAAAA, dns.TypeTXT, dns.TypeSRV, dns.TypeANY} {
			for _, size := range []uint16{0, 1232, 4096} {
				b, _ := msg(name, q, size).Pack()
				out := serveRaw(s, l, src, false, b)
				if len(out) > 1232 {
					t.Errorf("%s %s: a %d-byte UDP response", name, dns.TypeToString[q], len(out))
				}
				if r := float64(len(out)) / float64(len(b)); r > best {
					best, bestName = r, fmt.Sprintf("%s %s (EDNS %d): %d → %d bytes", name, dns.TypeToString[q], size, len(b), len(out))
				}
			}
		}
	}
	t.Logf("largest amplification on the test catalog: %.1f× — %s", best, bestName)
}
