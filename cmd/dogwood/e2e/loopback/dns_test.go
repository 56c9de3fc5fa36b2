package loopback

import (
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNS: every SPEC §4 name form answers through the real dig on every agent of a
// three-agent cluster, with the same answers everywhere; changes show within 1 s;
// another network's subnet sees nothing; other names go to the upstream; `dogwood
// dig` works.
func TestDNS(t *testing.T) {
	needDig(t)
	t.Parallel()
	c := newCluster(t)
	as := c.startN("ord", "ams", "fra")
	a1, a2, a3 := as[0], as[1], as[2]

	a1.must("orgs", "create", "acme")
	a2.must("orgs", "create", "other")
	a1.must("apps", "create", "web", "--org", "acme")
	a2.must("apps", "create", "api", "--org", "other")
	for _, a := range as {
		a := a
		eventually(t, 2*time.Second, func() (bool, string) {
			out := a.must("apps", "list", "--json")
			return strings.Contains(out, `"web"`) && strings.Contains(out, `"api"`), a.name + ": " + out
		})
	}
	create := func(a *agent, args ...string) machine {
		t.Helper()
		var m machine
		a.mustJSON(&m, append([]string{"machines", "create"}, args...)...)
		return m
	}
	// m1 ord: service http, role=primary, group app
	// m2 ams: service http, role=replica, group worker
	// m3 fra: no service, role=replica, group worker
	// m4 fra: stopped
	// x1 ams: another org's network
	m1 := create(a1, "--app", "web", "--service", "http:tcp:8080", "--metadata", "role=primary")
	m2 := create(a2, "--app", "web", "--service", "http:tcp:8080", "--metadata", "role=replica", "--process-group", "worker")
	m3 := create(a3, "--app", "web", "--metadata", "role=replica", "--process-group", "worker", "--region", "fra")
	m4 := create(a3, "--app", "web", "--stopped")
	x1 := create(a2, "--app", "api")
	waitSameList(t, as, 5, 5*time.Second)

	acme, other := a1.prefix("acme"), a1.prefix("other")
	if acme == other || !strings.HasSuffix(acme, "::/48") {
		t.Fatalf("prefixes: acme %s, other %s", acme, other)
	}
	for _, m := range []machine{m1, m2, m3, m4} {
		if !netip.MustParsePrefix(acme).Contains(netip.MustParseAddr(m.Address)) {
			t.Fatalf("machine %s address %s is outside %s", m.ID, m.Address, acme)
		}
	}

	addrs := func(ms ...machine) []string {
		var out []string
		for _, m := range ms {
			out = append(out, netip.MustParseAddr(m.Address).String())
		}
		sort.Strings(out)
		return out
	}
	vm := func(m machine) string { return m.ID + ".vm.web.internal." }
	inst := func(ms ...machine) []string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("instance=%s,app=web,ip=%s,region=%s", m.ID, m.Address, m.Region))
		}
		sort.Strings(out)
		return out
	}
	vms := func(ms ...machine) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID+" "+m.Region)
		}
		sort.Strings(out)
		return out
	}
	split := func(sep string) func([]string) []string {
		return func(d []string) []string {
			if len(d) != 1 {
				return d
			}
			out := strings.Split(d[0], sep)
			sort.Strings(out)
			return out
		}
	}
	ptr, _ := dns.ReverseAddr(m2.Address)

	// Every SPEC §4 name form (except peers, which need a WireGuard gateway).
	cases := []struct {
		name, qtype string
		want        []string                // sorted answer data (after norm)
		norm        func([]string) []string // e.g. split one TXT into its items
		rcode       string
	}{
		{name: "web.internal", qtype: "AAAA", want: addrs(m1, m2, m3)},
		{name: "global.web.internal", qtype: "AAAA", want: addrs(m1, m2, m3)},
		{name: "ord.web.internal", qtype: "AAAA", want: addrs(m1)},
		{name: "ams.web.internal", qtype: "AAAA", want: addrs(m2)},
		{name: "fra.web.internal", qtype: "AAAA", want: addrs(m3)},
		{name: m2.ID + ".vm.web.internal", qtype: "AAAA", want: addrs(m2)},
		{name: m4.ID + ".vm.web.internal", qtype: "AAAA", want: nil}, // stopped: exists, no address
		{name: "worker.process.web.internal", qtype: "AAAA", want: addrs(m2, m3)},
		{name: "app.process.web.internal", qtype: "AAAA", want: addrs(m1)},
		{name: "primary.role.kv._metadata.web.internal", qtype: "AAAA", want: addrs(m1)},
		{name: "replica.role.kv._metadata.web.internal", qtype: "AAAA", want: addrs(m2, m3)},
		{name: "_http._tcp.web.internal", qtype: "SRV", want: sorted("0 10 8080 "+vm(m1), "0 10 8080 "+vm(m2))},
		{name: "vms.web.internal", qtype: "TXT", want: vms(m1, m2, m3), norm: split(",")},
		{name: "all.vms.web.internal", qtype: "TXT", want: vms(m1, m2, m3, m4), norm: split(",")},
		{name: "regions.web.internal", qtype: "TXT", want: []string{"ams,fra,ord"}},
		{name: "all.regions.web.internal", qtype: "TXT", want: []string{"ams,fra,ord"}},
		{name: "_apps.internal", qtype: "TXT", want: []string{"web"}},
		{name: "_instances.internal", qtype: "TXT", want: inst(m1, m2, m3), norm: split(";")},
		{name: "all._instances.internal", qtype: "TXT", want: inst(m1, m2, m3, m4), norm: split(";")},
		{name: "_peer.internal", qtype: "TXT", want: nil},
		{name: ptr, qtype: "PTR", want: []string{vm(m2)}},
		{name: "web.internal", qtype: "TXT", want: nil},                            // exists, no TXT
		{name: "nosuchapp.internal", qtype: "AAAA", rcode: "NXDOMAIN"},             // no such app
		{name: "lhr.web.internal", qtype: "AAAA", want: nil},                       // no machines there (NOERROR or NXDOMAIN both fine)
		{name: "00000000000000.vm.web.internal", qtype: "AAAA", rcode: "NXDOMAIN"}, // no such machine
		{name: "api.internal", qtype: "AAAA", rcode: "NXDOMAIN"},                   // another network's app
	}
	t.Run("name forms", func(t *testing.T) {
		for _, tc := range cases {
			var first []string
			for _, a := range as {
				d := a.dig(acme, tc.name, tc.qtype)
				got := d.data()
				if tc.norm != nil {
					got = tc.norm(got)
				}
				wantRcode := tc.rcode
				if wantRcode == "" {
					wantRcode = "NOERROR"
				}
				if tc.name == "lhr.web.internal" && d.rcode == "NXDOMAIN" {
					wantRcode = "NXDOMAIN"
				}
				if d.rcode != wantRcode || !d.has("aa") || !sameStrings(got, tc.want) {
					t.Errorf("%s: %s %s: want %s aa %q, got %s flags %v %q\n%s", a.name, tc.name, tc.qtype, wantRcode, tc.want, d.rcode, d.flags, got, d.raw)
				}
				if len(d.answer) == 0 && !hasSOA(d) {
					t.Errorf("%s: %s %s: empty answer without an SOA for internal. (min TTL 5)\n%s", a.name, tc.name, tc.qtype, d.raw)
				}
				for _, rr := range d.answer {
					if rr.Header().Ttl != 5 {
						t.Errorf("%s: %s %s: TTL %d, want 5", a.name, tc.name, tc.qtype, rr.Header().Ttl)
					}
				}
				if first == nil {
					first = append([]string{d.rcode}, got...)
				} else if cur := append([]string{d.rcode}, got...); !reflect.DeepEqual(cur, first) {
					t.Errorf("%s %s: %s answers %q, %s answered %q", tc.name, tc.qtype, a.name, cur, as[0].name, first)
				}
			}
		}
	})

	t.Run("nearest", func(t *testing.T) {
		own := map[string]machine{"h1": m1, "h2": m2, "h3": m3}
		for _, a := range as {
			d := a.dig(acme, "top1.nearest.of.web.internal", "AAAA")
			if got := d.data(); !sameStrings(got, addrs(own[a.name])) {
				t.Errorf("%s: top1.nearest.of.web.internal = %q, want its own machine %s", a.name, got, own[a.name].Address)
			}
			d = a.dig(acme, "top2.nearest.of.web.internal", "AAAA")
			got := d.data()
			if d.rcode != "NOERROR" || len(got) != 2 || !contains(got, addrs(own[a.name])[0]) {
				t.Errorf("%s: top2.nearest.of.web.internal = %s %q, want 2 addresses including %s", a.name, d.rcode, got, own[a.name].Address)
			}
			for _, ad := range got {
				if !contains(addrs(m1, m2, m3), ad) {
					t.Errorf("%s: top2.nearest.of.web.internal answers %s, not a started web machine", a.name, ad)
				}
			}
			d = a.dig(acme, "top20.nearest.of.web.internal", "AAAA")
			if !sameStrings(d.data(), addrs(m1, m2, m3)) {
				t.Errorf("%s: top20.nearest.of.web.internal = %q", a.name, d.data())
			}
		}
	})

	t.Run("network isolation", func(t *testing.T) {
		for _, a := range as {
			for _, q := range [][]string{
				{"web.internal", "AAAA"}, {m1.ID + ".vm.web.internal", "AAAA"}, {"vms.web.internal", "TXT"},
				{"all.vms.web.internal", "TXT"}, {"regions.web.internal", "TXT"}, {"_http._tcp.web.internal", "SRV"},
				{"primary.role.kv._metadata.web.internal", "AAAA"}, {"top2.nearest.of.web.internal", "AAAA"},
			} {
				d := a.dig(other, q...)
				if d.rcode != "NXDOMAIN" || len(d.answer) != 0 {
					t.Errorf("%s: %s %s from network other: want NXDOMAIN, got %s %q", a.name, q[0], q[1], d.rcode, d.data())
				}
			}
			// The reverse name of acme's machine, asked from other's network.
			rev, _ := dns.ReverseAddr(m1.Address)
			if d := a.dig(other, rev, "PTR"); len(d.answer) != 0 {
				t.Errorf("%s: PTR of acme's %s from network other: %q", a.name, m1.Address, d.data())
			}
			want := fmt.Sprintf("instance=%s,app=api,ip=%s,region=%s", x1.ID, x1.Address, x1.Region)
			if d := a.dig(other, "all._instances.internal", "TXT"); !sameStrings(d.data(), []string{want}) {
				t.Errorf("%s: all._instances.internal from network other = %q, want only %q", a.name, d.data(), want)
			}
			if d := a.dig(other, "_apps.internal", "TXT"); !sameStrings(d.data(), []string{"api"}) {
				t.Errorf("%s: _apps.internal from network other = %q, want [api]", a.name, d.data())
			}
			if d := a.dig(other, "api.internal", "AAAA"); !sameStrings(d.data(), addrs(x1)) {
				t.Errorf("%s: api.internal from network other = %q", a.name, d.data())
			}
			// No scope at all: REFUSED (SPEC §4 rule 4).
			if d := a.dig("", "web.internal", "AAAA"); d.rcode != "REFUSED" || len(d.answer) != 0 {
				t.Errorf("%s: web.internal without a client subnet: %s %q, want REFUSED", a.name, d.rcode, d.data())
			}
		}
	})

	t.Run("TCP", func(t *testing.T) {
		d := a2.dig(acme, "+tcp", "web.internal", "AAAA")
		if !sameStrings(d.data(), addrs(m1, m2, m3)) {
			t.Errorf("web.internal over TCP = %q", d.data())
		}
	})

	t.Run("upstream", func(t *testing.T) {
		for _, a := range as {
			before := c.upstream.queries("example.com")
			d := a.dig(acme, "example.com", "A")
			if d.rcode != "NOERROR" || !sameStrings(d.data(), []string{"192.0.2.1"}) {
				t.Errorf("%s: example.com A = %s %q, want 192.0.2.1 from the fake upstream\n%s", a.name, d.rcode, d.data(), d.raw)
			}
			if c.upstream.queries("example.com") <= before {
				t.Errorf("%s: example.com was not forwarded to the fake upstream", a.name)
			}
		}
	})

	t.Run("dogwood dig", func(t *testing.T) {
		r := a3.cli("dig", "--org", "acme", "web.internal")
		if r.code != 0 {
			t.Fatalf("dogwood dig: %s", r)
		}
		d, err := parseDig(r.stdout)
		if err != nil {
			t.Fatalf("dogwood dig output: %v\n%s", err, r.stdout)
		}
		if d.rcode != "NOERROR" || !d.has("aa") || !sameStrings(d.data(), addrs(m1, m2, m3)) {
			t.Errorf("dogwood dig --org acme web.internal:\n%s", r.stdout)
		}
		short := a3.must("dig", "--org", "acme", "--short", "web.internal")
		if got := sorted(strings.Fields(short)...); !sameStrings(got, addrs(m1, m2, m3)) {
			t.Errorf("dogwood dig --short web.internal = %q", short)
		}
		if got := strings.TrimSpace(a1.must("dig", "--org", "acme", "--short", "regions.web.internal")); got != `"ams,fra,ord"` {
			t.Errorf("dogwood dig --short regions.web.internal = %q", got)
		}
		if got := strings.TrimSpace(a1.must("dig", "--org", "other", "--short", "api.internal")); got != addrs(x1)[0] {
			t.Errorf("dogwood dig --org other --short api.internal = %q", got)
		}
		if got := strings.TrimSpace(a2.must("dig", "--org", "acme", "--short", "_http._tcp.web.internal")); strings.Count(got, "\n") != 1 || !strings.Contains(got, "8080 "+vm(m1)) {
			t.Errorf("dogwood dig --short _http._tcp.web.internal = %q", got)
		}
		if got := strings.TrimSpace(a2.must("dig", "--org", "acme", "--short", ptr)); got != vm(m2) {
			t.Errorf("dogwood dig --short %s = %q", ptr, got)
		}
	})

	// Last, since it changes the answers: a machine stopped on agent 1 leaves
	// web.internal on agent 3 within 1 s of the stop returning.
	t.Run("stop propagates", func(t *testing.T) {
		a1.must("machines", "stop", m1.ID)
		stopped := time.Now()
		took := eventually(t, 3*time.Second, func() (bool, string) {
			d := a3.dig(acme, "web.internal", "AAAA")
			return sameStrings(d.data(), addrs(m2, m3)), fmt.Sprintf("web.internal on h3 = %q", d.data())
		})
		if d := time.Since(stopped); d > time.Second {
			t.Errorf("stopped machine left web.internal on agent 3 after %v; want ≤ 1s", d)
		}
		t.Logf("stop on h1 visible in h3's DNS after %v", took)
		for _, a := range as {
			if got := split(",")(a.dig(acme, "vms.web.internal", "TXT").data()); !sameStrings(got, vms(m2, m3)) {
				t.Errorf("%s: vms.web.internal after stop = %q", a.name, got)
			}
			if got := split(",")(a.dig(acme, "all.vms.web.internal", "TXT").data()); !sameStrings(got, vms(m1, m2, m3, m4)) {
				t.Errorf("%s: all.vms.web.internal after stop = %q", a.name, got)
			}
			if d := a.dig(acme, "ord.web.internal", "AAAA"); len(d.answer) != 0 {
				t.Errorf("%s: ord.web.internal after stop = %q", a.name, d.data())
			}
			if got := a.dig(acme, "_http._tcp.web.internal", "SRV").data(); !sameStrings(got, []string{"0 10 8080 " + vm(m2)}) {
				t.Errorf("%s: SRV after stop = %q", a.name, got)
			}
		}
		// And back.
		a3.must("machines", "start", m1.ID) // forwarded to h1, which runs it
		eventually(t, 3*time.Second, func() (bool, string) {
			d := a2.dig(acme, "web.internal", "AAAA")
			return sameStrings(d.data(), addrs(m1, m2, m3)), fmt.Sprintf("web.internal on h2 = %q", d.data())
		})
	})
}

func hasSOA(d digAnswer) bool {
	for _, rr := range d.authority {
		if soa, ok := rr.(*dns.SOA); ok && soa.Hdr.Name == "internal." && soa.Minttl == 5 {
			return true
		}
	}
	return false
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(sorted(a...), sorted(b...))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
