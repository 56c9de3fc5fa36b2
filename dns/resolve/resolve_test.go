package resolve

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// query runs one question through r and returns the unpacked response.
func query(t testing.TB, r *Resolver, net uint32, name string, qtype uint16, limit int, edns bool) *dns.Msg {
	t.Helper()
	m, _ := queryRaw(t, r, net, name, qtype, limit, edns)
	return m
}

func queryRaw(t testing.TB, r *Resolver, net uint32, name string, qtype uint16, limit int, edns bool) (*dns.Msg, int) {
	t.Helper()
	req := &Request{ID: 4242, RD: true, QType: qtype, QClass: dns.ClassINET, Limit: limit, EDNS: edns, UDPSize: 1232}
	qn := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), qn, 0, nil, false)
	if err != nil {
		t.Fatalf("pack %q: %v", name, err)
	}
	req.QName = qn[:n]
	out, rcode, ok := r.Answer(nil, net, dns.Fqdn(name), req)
	if !ok {
		t.Fatalf("%s: not ours", name)
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("%s: unpack: %v", name, err)
	}
	if m.Rcode != rcode {
		t.Fatalf("%s: rcode %d in message, %d returned", name, m.Rcode, rcode)
	}
	if m.Id != 4242 || !m.Response || len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, dns.Fqdn(name)) {
		t.Fatalf("%s: bad header/question: %v", name, m)
	}
	return m, len(out)
}

func short(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

func shorts(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, short(rr))
	}
	return out
}

func fixture() (*catalog.Snapshot, *Resolver) {
	snap := dnstest.Fixture()
	return snap, New(StaticSource{snap}, dnstest.FixtureNear)
}

func addr(snap *catalog.Snapshot, app, id string) string {
	return snap.Machine(app, id).Address.String()
}

func peerAddr(snap *catalog.Snapshot, net uint32, name string) string {
	return snap.Networks[net].Peers[name].Address.String()
}

func reverse(a string) string {
	name, _ := dns.ReverseAddr(a)
	return name
}

func TestTable(t *testing.T) {
	snap, r := fixture()
	a := func(id string) string { return addr(snap, "web", id) }
	soa := "internal."
	rsoa := "a.a.d.f.ip6.arpa."
	type tc struct {
		name    string
		net     uint32
		qtype   uint16
		rcode   int
		answer  []string // short forms; sorted before comparing unless ordered
		ordered bool
		soa     string // owner of the authority SOA, "" for none
	}
	live := []string{a(dnstest.WebOrd), a(dnstest.WebAms), a(dnstest.WebOrd2)}
	cases := []tc{
		// <app>.internal and global.<app>.internal: started machines on live (alive/suspect) hosts.
		{"web.internal", dnstest.NetA, dns.TypeAAAA, 0, live, false, ""},
		{"WEB.Internal", dnstest.NetA, dns.TypeAAAA, 0, live, false, ""},
		{"global.web.internal", dnstest.NetA, dns.TypeAAAA, 0, live, false, ""},
		{"web.internal", dnstest.NetA, dns.TypeA, 0, nil, false, soa},
		{"web.internal", dnstest.NetA, dns.TypeTXT, 0, nil, false, soa},
		{"web.internal", dnstest.NetA, dns.TypeANY, 0, live, false, ""},
		{"web.internal", dnstest.NetA, 999, 0, nil, false, soa},
		// An app with no started machines exists: NODATA.
		{"api.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		{"nope.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		// <region>.<app>.internal
		{"ord.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd), a(dnstest.WebOrd2)}, false, ""},
		{"ams.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebAms)}, false, ""},
		{"syd.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},                  // only a failed-host machine there
		{"lhr.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},                  // a cluster region without machines
		{"xyz.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa}, // unknown region
		// top<N>.nearest.of: own host first, then by RTT.
		{"top1.nearest.of.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd)}, true, ""},
		{"top2.nearest.of.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd), a(dnstest.WebOrd2)}, true, ""},
		{"top20.nearest.of.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd), a(dnstest.WebOrd2), a(dnstest.WebAms)}, true, ""},
		{"top21.nearest.of.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		{"top0.nearest.of.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		{"top3.nearest.of.api.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		{"nearest.of.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa}, // empty non-terminal
		// <machine_id>.vm.<app>.internal
		{dnstest.WebOrd + ".vm.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd)}, false, ""},
		{dnstest.WebOrd2 + ".vm.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd2)}, false, ""},
		{dnstest.WebStop + ".vm.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		{dnstest.WebSyd + ".vm.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		{"ffffffffffffff.vm.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		{dnstest.Secret + ".vm.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		// <group>.process.<app>.internal
		{"app.process.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd), a(dnstest.WebOrd2)}, false, ""},
		{"worker.process.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebAms)}, false, ""},
		{"nobody.process.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		// <value>.<key>.kv._metadata.<app>.internal
		{"primary.role.kv._metadata.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebOrd)}, false, ""},
		{"replica.role.kv._metadata.web.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{a(dnstest.WebAms)}, false, ""},
		{"other.role.kv._metadata.web.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		{"role.kv._metadata.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		// _<service>._<proto>.<app>.internal SRV
		{"_http._tcp.web.internal", dnstest.NetA, dns.TypeSRV, 0, []string{
			"0 10 8080 " + dnstest.WebOrd + ".vm.web.internal.", "0 10 8081 " + dnstest.WebAms + ".vm.web.internal."}, false, ""},
		{"_grpc._tcp.web.internal", dnstest.NetA, dns.TypeSRV, 0, nil, false, soa}, // only a stopped machine registered it
		{"_ftp._tcp.web.internal", dnstest.NetA, dns.TypeSRV, dns.RcodeNameError, nil, false, soa},
		{"_http._tcp.web.internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		{"_tcp.web.internal", dnstest.NetA, dns.TypeSRV, 0, nil, false, soa},
		// <peer>._peer.internal
		{"alice._peer.internal", dnstest.NetA, dns.TypeAAAA, 0, []string{peerAddr(snap, dnstest.NetA, "alice")}, false, ""},
		{"carol._peer.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
		// TXT listings
		{"vms.web.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"` + dnstest.WebOrd + ` ord,` + dnstest.WebAms + ` ams,` + dnstest.WebOrd2 + ` ord"`}, false, ""},
		{"all.vms.web.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"` + dnstest.WebOrd + ` ord,` + dnstest.WebAms + ` ams,` + dnstest.WebOrd2 + ` ord,` + dnstest.WebSyd + ` syd,` + dnstest.WebStop + ` ams"`}, false, ""},
		{"vms.api.internal", dnstest.NetA, dns.TypeTXT, 0, nil, false, soa},
		{"all.vms.api.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"` + dnstest.APIStop + ` ams"`}, false, ""},
		{"regions.web.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"ams,ord"`}, false, ""},
		{"all.regions.web.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"ams,ord,syd"`}, false, ""},
		{"_apps.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"api,big,web"`}, false, ""},
		{"_apps.internal", dnstest.NetB, dns.TypeTXT, 0, []string{`"secret"`}, false, ""},
		{"_peer.internal", dnstest.NetA, dns.TypeTXT, 0, []string{`"alice,bob"`}, false, ""},
		{"_peer.internal", dnstest.NetC, dns.TypeTXT, 0, nil, false, soa},
		{"_instances.internal", dnstest.NetB, dns.TypeTXT, 0, []string{`"instance=` + dnstest.Secret + `,app=secret,ip=` + addr(snap, "secret", dnstest.Secret) + `,region=ord"`}, false, ""},
		// Reverse names.
		{reverse(a(dnstest.WebOrd)), dnstest.NetA, dns.TypePTR, 0, []string{dnstest.WebOrd + ".vm.web.internal."}, false, ""},
		{reverse(a(dnstest.WebStop)), dnstest.NetA, dns.TypePTR, 0, []string{dnstest.WebStop + ".vm.web.internal."}, false, ""},
		{reverse(peerAddr(snap, dnstest.NetA, "bob")), dnstest.NetA, dns.TypePTR, 0, []string{"bob._peer.internal."}, false, ""},
		{reverse(a(dnstest.WebOrd)), dnstest.NetA, dns.TypeAAAA, 0, nil, false, rsoa},
		{reverse(addr(snap, "secret", dnstest.Secret)), dnstest.NetA, dns.TypePTR, dns.RcodeNameError, nil, false, rsoa},
		{reverse("fdaa:0:18:1:2:3:4:5"), dnstest.NetA, dns.TypePTR, dns.RcodeNameError, nil, false, rsoa},
		{"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dnstest.NetA, dns.TypePTR, 0, nil, false, rsoa},
		{"9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dnstest.NetA, dns.TypePTR, dns.RcodeNameError, nil, false, rsoa},
		// Apex.
		{"internal", dnstest.NetA, dns.TypeSOA, 0, nil, false, ""},
		{"internal", dnstest.NetA, dns.TypeAAAA, 0, nil, false, soa},
		// Garbage under internal.
		{"a.b.c.d.e.f.internal", dnstest.NetA, dns.TypeAAAA, dns.RcodeNameError, nil, false, soa},
	}
	// Cross-network isolation: every name of NetA is invisible from NetB and NetC.
	for _, name := range []string{"web.internal", "ord.web.internal", "top1.nearest.of.web.internal", dnstest.WebOrd + ".vm.web.internal",
		"vms.web.internal", "regions.web.internal", "_http._tcp.web.internal", "alice._peer.internal", reverse(a(dnstest.WebOrd))} {
		for _, net := range []uint32{dnstest.NetB, dnstest.NetC} {
			want := soa
			if strings.HasSuffix(name, "arpa.") {
				want = rsoa
			}
			cases = append(cases, tc{name, net, dns.TypeANY, dns.RcodeNameError, nil, false, want})
		}
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%x", c.name, dns.TypeToString[c.qtype], c.net), func(t *testing.T) {
			m := query(t, r, c.net, c.name, c.qtype, MaxMsg, false)
			if m.Rcode != c.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode])
			}
			if !m.Authoritative {
				t.Error("AA not set")
			}
			if c.name == "internal" && c.qtype == dns.TypeSOA {
				if len(m.Answer) != 1 || m.Answer[0].(*dns.SOA).Minttl != TTL {
					t.Fatalf("apex SOA: %v", m.Answer)
				}
				return
			}
			got := shorts(m.Answer)
			want := slices.Clone(c.answer)
			if !c.ordered {
				sort.Strings(got)
				sort.Strings(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("answer\n got %q\nwant %q", got, want)
			}
			for _, rr := range m.Answer {
				if rr.Header().Ttl != TTL || !strings.EqualFold(rr.Header().Name, dns.Fqdn(c.name)) {
					t.Errorf("bad header %v", rr.Header())
				}
			}
			if c.soa == "" {
				if len(m.Ns) != 0 {
					t.Errorf("unexpected authority %v", m.Ns)
				}
				return
			}
			if len(m.Ns) != 1 {
				t.Fatalf("authority %v, want SOA %s", m.Ns, c.soa)
			}
			s, ok := m.Ns[0].(*dns.SOA)
			if !ok || !strings.EqualFold(s.Hdr.Name, c.soa) || s.Minttl != TTL || s.Hdr.Ttl != TTL {
				t.Errorf("authority %v, want SOA of %s with minimum %d", m.Ns[0], c.soa, TTL)
			}
		})
	}
}

func TestLivenessChanges(t *testing.T) {
	// The same catalog with h-ams failed and h-syd back: address answers follow, the
	// all. listings do not change.
	snap := dnstest.Fixture()
	src := &swapSource{}
	src.set(snap)
	r := New(src, nil)
	count := func(name string) int {
		return len(query(t, r, dnstest.NetA, name, dns.TypeAAAA, MaxMsg, false).Answer)
	}
	if n := count("web.internal"); n != 3 {
		t.Fatalf("before: %d", n)
	}
	allBefore := shorts(query(t, r, dnstest.NetA, "all.vms.web.internal", dns.TypeTXT, MaxMsg, false).Answer)
	src.set(dnstest.FixtureWith(map[string]string{"h-ams": catalog.StatusFailed, "h-syd": catalog.StatusAlive}))
	if n := count("web.internal"); n != 3 { // ord1, ord2, syd
		t.Fatalf("after: %d", n)
	}
	if n := count("ams.web.internal"); n != 0 {
		t.Fatalf("ams after failure: %d", n)
	}
	if n := count("syd.web.internal"); n != 1 {
		t.Fatalf("syd after return: %d", n)
	}
	if got := shorts(query(t, r, dnstest.NetA, "all.vms.web.internal", dns.TypeTXT, MaxMsg, false).Answer); !slices.Equal(got, allBefore) {
		t.Fatalf("all.vms changed: %q vs %q", got, allBefore)
	}
}

func TestReuseUnchangedViews(t *testing.T) {
	// A snapshot that shares the NetworkView (a change elsewhere) must reuse the index;
	// one that swaps a single AppView must rebuild only that app.
	s1 := dnstest.Fixture()
	src := &swapSource{}
	src.set(s1)
	r := New(src, nil)
	r.Refresh()
	n1 := r.network(r.current(), dnstest.NetA)

	s2 := *s1
	s2.Seq++
	src.set(&s2)
	n2 := r.network(r.current(), dnstest.NetA)
	if n1 != n2 {
		t.Fatal("unchanged network was rebuilt")
	}

	s3 := s2
	s3.Seq++
	nv := *s1.Networks[dnstest.NetA]
	nv.Apps = map[string]*catalog.AppView{}
	for k, v := range s1.Networks[dnstest.NetA].Apps {
		nv.Apps[k] = v
	}
	api := *nv.Apps["api"]
	nv.Apps["api"] = &api
	s3.Networks = map[uint32]*catalog.NetworkView{dnstest.NetA: &nv, dnstest.NetB: s1.Networks[dnstest.NetB], dnstest.NetC: s1.Networks[dnstest.NetC]}
	src.set(&s3)
	n3 := r.network(r.current(), dnstest.NetA)
	if n3 == n2 {
		t.Fatal("changed network reused")
	}
	if n3.apps["web"] != n2.apps["web"] {
		t.Error("unchanged app rebuilt")
	}
	if n3.apps["api"] == n2.apps["api"] {
		t.Error("changed app reused")
	}
}

func TestRotation(t *testing.T) {
	_, r := fixture()
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		m := query(t, r, dnstest.NetA, "web.internal", dns.TypeAAAA, MaxMsg, false)
		if len(m.Answer) != 3 {
			t.Fatalf("answers %d", len(m.Answer))
		}
		seen[short(m.Answer[0])] = true
	}
	if len(seen) != 3 {
		t.Errorf("first answer took %d distinct values over 6 queries, want 3", len(seen))
	}
}

func TestTruncation(t *testing.T) {
	_, r := fixture()
	// 512 without EDNS
	m, n := queryRaw(t, r, dnstest.NetA, "big.internal", dns.TypeAAAA, 512, false)
	if !m.Truncated || n > 512 || len(m.Answer) == 0 {
		t.Fatalf("512: tc=%v len=%d answers=%d", m.Truncated, n, len(m.Answer))
	}
	// EDNS 1232: still too big, OPT kept.
	m, n = queryRaw(t, r, dnstest.NetA, "big.internal", dns.TypeAAAA, 1232, true)
	if !m.Truncated || n > 1232 || m.IsEdns0() == nil {
		t.Fatalf("1232: tc=%v len=%d opt=%v", m.Truncated, n, m.IsEdns0())
	}
	// TCP limit: everything.
	m = query(t, r, dnstest.NetA, "big.internal", dns.TypeAAAA, MaxMsg, true)
	if m.Truncated || len(m.Answer) != dnstest.BigN {
		t.Fatalf("tcp: tc=%v answers=%d", m.Truncated, len(m.Answer))
	}
	// Small answers are not truncated.
	m = query(t, r, dnstest.NetA, "web.internal", dns.TypeAAAA, 512, false)
	if m.Truncated || len(m.Answer) != 3 {
		t.Fatalf("small: %v", m)
	}
}

func TestTXTSplit(t *testing.T) {
	snap, r := fixture()
	m := query(t, r, dnstest.NetA, "vms.big.internal", dns.TypeTXT, MaxMsg, false)
	if len(m.Answer) != 1 {
		t.Fatalf("want one record, got %d", len(m.Answer))
	}
	txt := m.Answer[0].(*dns.TXT).Txt
	if len(txt) < 2 {
		t.Fatalf("not split: %d strings", len(txt))
	}
	for _, s := range txt {
		if len(s) > 255 {
			t.Fatalf("string of %d bytes", len(s))
		}
	}
	joined := strings.Join(txt, "")
	var want []string
	for _, mm := range snap.Networks[dnstest.NetA].Apps["big"].Machines {
		want = append(want, mm.ID+" "+mm.Region)
	}
	if joined != strings.Join(want, ",") {
		t.Fatalf("joined listing differs:\n%s\n%s", joined, strings.Join(want, ","))
	}
	inst := strings.Join(query(t, r, dnstest.NetA, "all._instances.internal", dns.TypeTXT, MaxMsg, false).Answer[0].(*dns.TXT).Txt, "")
	if n := strings.Count(inst, ";") + 1; n != 6+dnstest.BigN {
		t.Fatalf("all._instances has %d entries, want %d", n, 6+dnstest.BigN)
	}
	if !strings.Contains(inst, "instance="+dnstest.WebStop+",app=web,ip="+addr(snap, "web", dnstest.WebStop)+",region=ams") {
		t.Fatalf("stopped machine missing from all._instances")
	}
	live := strings.Join(query(t, r, dnstest.NetA, "_instances.internal", dns.TypeTXT, MaxMsg, false).Answer[0].(*dns.TXT).Txt, "")
	if strings.Contains(live, dnstest.WebStop) || strings.Contains(live, dnstest.WebSyd) {
		t.Fatal("_instances lists stopped or failed-host machines")
	}
}

func TestNotOursAndBadClass(t *testing.T) {
	_, r := fixture()
	req := &Request{QType: dns.TypeA, QClass: dns.ClassINET, QName: []byte{7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0}}
	if _, _, ok := r.Answer(nil, dnstest.NetA, "example.", req); ok {
		t.Fatal("example. claimed")
	}
	if _, _, ok := r.Answer(nil, dnstest.NetA, reverse("fd00::1"), req); ok {
		t.Fatal("non-6PN reverse claimed")
	}
	req = &Request{QType: dns.TypeAAAA, QClass: dns.ClassCHAOS, QName: appendName(nil, "web.internal.")}
	if _, rc, _ := r.Answer(nil, dnstest.NetA, "web.internal.", req); rc != RcodeRefused {
		t.Fatalf("CH class: rcode %d", rc)
	}
	req = &Request{QType: dns.TypeAXFR, QClass: dns.ClassINET, QName: appendName(nil, "internal.")}
	if _, rc, _ := r.Answer(nil, dnstest.NetA, "internal.", req); rc != RcodeRefused {
		t.Fatalf("AXFR: rcode %d", rc)
	}
	req = &Request{QType: dns.TypeAAAA, QClass: dns.ClassINET, QName: appendName(nil, "web.internal.")}
	if _, rc, _ := r.Answer(nil, 0x12345678, "web.internal.", req); rc != RcodeRefused {
		t.Fatalf("unknown network: rcode %d", rc)
	}
}

func TestConcurrentSwap(t *testing.T) {
	// Readers racing a writer that flips liveness: every answer must be consistent with
	// one of the two snapshots (run with -race).
	src := &swapSource{}
	a := dnstest.Fixture()
	b := dnstest.FixtureWith(map[string]string{"h-ams": catalog.StatusFailed})
	src.set(a)
	r := New(src, nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := len(query(t, r, dnstest.NetA, "web.internal", dns.TypeAAAA, MaxMsg, false).Answer)
				if n != 3 && n != 2 {
					t.Errorf("inconsistent answer count %d", n)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			src.set(b)
		} else {
			src.set(a)
		}
	}
	close(stop)
	wg.Wait()
	// After the last swap the very next query sees it.
	src.set(b)
	if n := len(query(t, r, dnstest.NetA, "web.internal", dns.TypeAAAA, MaxMsg, false).Answer); n != 2 {
		t.Fatalf("change not visible immediately: %d answers", n)
	}
}

func TestLarge(t *testing.T) {
	snap := dnstest.Large{Apps: 50, PerApp: 10, Regions: []string{"ord", "ams", "syd", "fra"}}.Build()
	r := New(StaticSource{snap}, nil)
	m := query(t, r, dnstest.NetA, "app7.internal", dns.TypeAAAA, 512, false)
	if len(m.Answer) != 10 || m.Truncated {
		t.Fatalf("app7: %d answers tc=%v", len(m.Answer), m.Truncated)
	}
	for _, rr := range m.Answer {
		a, _ := netip.ParseAddr(short(rr))
		if n, ok := sixpn.NetworkOf(a); !ok || n != dnstest.NetA {
			t.Fatalf("address %s outside the network", a)
		}
	}
}

type swapSource struct {
	mu   sync.Mutex
	snap *catalog.Snapshot
}

func (s *swapSource) set(snap *catalog.Snapshot) { s.mu.Lock(); s.snap = snap; s.mu.Unlock() }
func (s *swapSource) Snapshot() *catalog.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func BenchmarkAnswer(b *testing.B) {
	snap := dnstest.Large{Apps: 1000, PerApp: 10, Regions: []string{"ord", "ams", "syd", "fra"}}.Build()
	r := New(StaticSource{snap}, nil)
	req := &Request{ID: 1, QType: dns.TypeAAAA, QClass: dns.ClassINET, QName: appendName(nil, "app500.internal."), Limit: 1232, EDNS: true, UDPSize: 1232}
	buf := make([]byte, 0, 1232)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = r.Answer(buf[:0], dnstest.NetA, "app500.internal.", req)
	}
}
