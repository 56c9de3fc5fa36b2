package resolve

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// full is a record as "owner ttl TYPE rdata", lowercased; TXT strings are joined.
func full(rr dns.RR) string {
	if t, ok := rr.(*dns.TXT); ok {
		return strings.ToLower(fmt.Sprintf("%s %d txt %q", t.Hdr.Name, t.Hdr.Ttl, strings.Join(t.Txt, "")))
	}
	f := strings.Fields(rr.String())
	if len(f) > 3 && f[2] == "IN" {
		f = append(f[:2], f[3:]...)
	}
	return strings.ToLower(strings.Join(f, " "))
}

func TestCustomRecords(t *testing.T) {
	snap, r := fixture()
	a := func(id string) string { return addr(snap, "web", id) }
	const soa = "internal."
	var names []string
	for _, rec := range dnstest.Records() {
		if rec.NetworkID == dnstest.NetA && !slices.Contains(names, rec.Name) {
			names = append(names, rec.Name)
		}
	}
	sort.Strings(names)
	type tc struct {
		name   string
		net    uint32
		qtype  uint16
		rcode  int
		answer []string // full forms, compared sorted; nil with any=true: not checked
		soa    string
		any    bool
	}
	aaaa := func(owner string, ttl int, addrs ...string) []string {
		var out []string
		for _, x := range addrs {
			out = append(out, fmt.Sprintf("%s %d aaaa %s", owner, ttl, x))
		}
		return out
	}
	web := []string{a(dnstest.WebOrd), a(dnstest.WebAms), a(dnstest.WebOrd2)}
	dbAAAA := aaaa("db.internal.", 30, "fdaa:0:18::db", "fdaa:0:18::db2")
	A, B := dnstest.NetA, dnstest.NetB
	cases := []tc{
		// Plain records with their own TTL; several values of one name and type.
		{"db.internal", A, dns.TypeAAAA, 0, dbAAAA, "", false},
		{"DB.Internal", A, dns.TypeAAAA, 0, dbAAAA, "", false},
		{"db.internal", A, dns.TypeA, 0, []string{"db.internal. 30 a 10.0.0.7"}, "", false},
		{"db.internal", A, dns.TypeTXT, 0, []string{`db.internal. 60 txt "owner=data"`}, "", false},
		{"db.internal", A, dns.TypeANY, 0, append(slices.Clone(dbAAAA), "db.internal. 30 a 10.0.0.7", `db.internal. 60 txt "owner=data"`), "", false},
		{"db.internal", A, dns.TypeMX, 0, nil, soa, false},
		{"_pg._tcp.db.internal", A, dns.TypeSRV, 0, []string{"_pg._tcp.db.internal. 5 srv 10 5 5432 db.internal."}, "", false},
		{"_tcp.db.internal", A, dns.TypeSRV, 0, nil, soa, false}, // empty non-terminal
		{"nope.db.internal", A, dns.TypeAAAA, dns.RcodeNameError, nil, soa, false},
		// ALIAS: the target's current addresses under the alias's own name and TTL.
		{"www.internal", A, dns.TypeAAAA, 0, aaaa("www.internal.", 20, web...), "", false},
		{"www.internal", A, dns.TypeA, 0, nil, soa, false},
		{"www.internal", A, dns.TypeTXT, 0, []string{`www.internal. 5 txt "blue-green"`}, "", false},
		{"www.internal", A, dns.TypeANY, 0, append(aaaa("www.internal.", 20, web...), `www.internal. 5 txt "blue-green"`), "", false},
		{"blue.internal", A, dns.TypeAAAA, 0, nil, soa, false}, // target app has no started machine
		{"near.internal", A, dns.TypeAAAA, 0, aaaa("near.internal.", 5, a(dnstest.WebOrd)), "", false},
		{"viadb.internal", A, dns.TypeAAAA, 0, aaaa("viadb.internal.", 5, "fdaa:0:18::db", "fdaa:0:18::db2"), "", false},
		{"viadb.internal", A, dns.TypeA, 0, []string{"viadb.internal. 5 a 10.0.0.7"}, "", false},
		{"dangling.internal", A, dns.TypeAAAA, 0, nil, soa, false},
		{"loop1.internal", A, dns.TypeAAAA, 0, nil, soa, false},
		// CNAME: out of zone as is; in zone with the target's records, chains followed.
		{"ext.internal", A, dns.TypeAAAA, 0, []string{"ext.internal. 300 cname db.example.com."}, "", false},
		{"alias-db.internal", A, dns.TypeAAAA, 0, append([]string{"alias-db.internal. 5 cname db.internal."}, dbAAAA...), "", false},
		{"chain.internal", A, dns.TypeAAAA, 0, append([]string{"chain.internal. 5 cname alias-db.internal.", "alias-db.internal. 5 cname db.internal."}, dbAAAA...), "", false},
		{"chain.internal", A, dns.TypeCNAME, 0, []string{"chain.internal. 5 cname alias-db.internal."}, "", false},
		{"chain.internal", A, dns.TypeSRV, 0, []string{"chain.internal. 5 cname alias-db.internal.", "alias-db.internal. 5 cname db.internal."}, soa, false},
		{"toweb.internal", A, dns.TypeAAAA, 0, append([]string{"toweb.internal. 5 cname ams.web.internal."}, aaaa("ams.web.internal.", 5, a(dnstest.WebAms))...), "", false},
		{"gone.internal", A, dns.TypeAAAA, dns.RcodeNameError, []string{"gone.internal. 5 cname nothing-here.internal."}, soa, false},
		{"cloop1.internal", A, dns.TypeAAAA, dns.RcodeServerFailure, nil, "", true},
		// Wildcards (RFC 4592): only below the closest encloser, never over an existing name.
		{"foo.dev.internal", A, dns.TypeTXT, 0, []string{`foo.dev.internal. 5 txt "wild"`}, "", false},
		{"a.b.foo.dev.internal", A, dns.TypeTXT, 0, []string{`a.b.foo.dev.internal. 5 txt "wild"`}, "", false},
		{"foo.dev.internal", A, dns.TypeAAAA, 0, aaaa("foo.dev.internal.", 5, "fdaa:0:18::d"), "", false},
		{"foo.dev.internal", A, dns.TypeSRV, 0, nil, soa, false},
		{"*.dev.internal", A, dns.TypeTXT, 0, []string{`*.dev.internal. 5 txt "wild"`}, "", false},
		{"x.dev.internal", A, dns.TypeTXT, 0, []string{`x.dev.internal. 5 txt "explicit"`}, "", false},
		{"x.dev.internal", A, dns.TypeAAAA, 0, nil, soa, false},
		{"y.x.dev.internal", A, dns.TypeTXT, dns.RcodeNameError, nil, soa, false},
		{"dev.internal", A, dns.TypeTXT, 0, nil, soa, false},
		// Empty non-terminals.
		{"a.b.deep.internal", A, dns.TypeAAAA, 0, aaaa("a.b.deep.internal.", 5, "fdaa:0:18::dee"), "", false},
		{"b.deep.internal", A, dns.TypeAAAA, 0, nil, soa, false},
		{"deep.internal", A, dns.TypeAAAA, 0, nil, soa, false},
		{"c.b.deep.internal", A, dns.TypeAAAA, dns.RcodeNameError, nil, soa, false},
		// A record that lost a race against an app: the generated name wins.
		{"web.internal", A, dns.TypeTXT, 0, nil, soa, false},
		{"web.internal", A, dns.TypeAAAA, 0, aaaa("web.internal.", 5, web...), "", false},
		// _records.internal lists the network's custom names.
		{"_records.internal", A, dns.TypeTXT, 0, []string{`_records.internal. 5 txt "` + strings.Join(names, ",") + `"`}, "", false},
		{"_records.internal", B, dns.TypeTXT, 0, []string{`_records.internal. 5 txt "secretrec.internal"`}, "", false},
		{"_records.internal", dnstest.NetC, dns.TypeTXT, 0, nil, soa, false},
		// Other networks never see them.
		{"secretrec.internal", A, dns.TypeAAAA, dns.RcodeNameError, nil, soa, false},
		{"secretrec.internal", B, dns.TypeAAAA, 0, aaaa("secretrec.internal.", 5, "fdaa:0:19::1"), "", false},
	}
	for _, name := range []string{"db.internal", "www.internal", "ext.internal", "foo.dev.internal", "deep.internal"} {
		cases = append(cases, tc{name, B, dns.TypeANY, dns.RcodeNameError, nil, soa, false})
		cases = append(cases, tc{name, dnstest.NetC, dns.TypeANY, dns.RcodeNameError, nil, soa, false})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%x", c.name, dns.TypeToString[c.qtype], c.net), func(t *testing.T) {
			for round := 0; round < 2; round++ { // the second round hits the caches
				m := query(t, r, c.net, c.name, c.qtype, MaxMsg, false)
				if m.Rcode != c.rcode {
					t.Fatalf("rcode %s, want %s: %v", dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode], m)
				}
				if !m.Authoritative {
					t.Error("AA not set")
				}
				if c.any {
					return
				}
				var got []string
				for _, rr := range m.Answer {
					got = append(got, full(rr))
				}
				want := slices.Clone(c.answer)
				sort.Strings(got)
				sort.Strings(want)
				if !slices.Equal(got, want) {
					t.Fatalf("answer\n got %q\nwant %q", got, want)
				}
				if c.soa == "" {
					if len(m.Ns) != 0 {
						t.Fatalf("unexpected authority %v", m.Ns)
					}
					continue
				}
				if len(m.Ns) != 1 {
					t.Fatalf("authority %v, want SOA", m.Ns)
				}
				if s, ok := m.Ns[0].(*dns.SOA); !ok || s.Hdr.Name != c.soa || s.Minttl != TTL {
					t.Fatalf("authority %v", m.Ns[0])
				}
			}
		})
	}
}

func TestCustomTXTSplit(t *testing.T) {
	_, r := fixture()
	m := query(t, r, dnstest.NetA, "long.internal", dns.TypeTXT, MaxMsg, false)
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", m.Answer)
	}
	txt := m.Answer[0].(*dns.TXT).Txt
	if len(txt) != 3 || len(txt[0]) != 255 || strings.Join(txt, "") != dnstest.LongTXT {
		t.Fatalf("strings %d %q", len(txt), txt)
	}
}

func TestCustomTruncation(t *testing.T) {
	_, r := fixture()
	for _, name := range []string{"bigalias.internal", "bigcname.internal"} {
		udp := query(t, r, dnstest.NetA, name, dns.TypeAAAA, 512, false)
		if !udp.Truncated || len(udp.Answer) == 0 || len(udp.Answer) >= dnstest.BigN {
			t.Fatalf("%s over UDP: tc=%v %d records", name, udp.Truncated, len(udp.Answer))
		}
		if name == "bigcname.internal" && udp.Answer[0].Header().Rrtype != dns.TypeCNAME {
			t.Fatalf("CNAME not first: %v", udp.Answer[0])
		}
		tcp := query(t, r, dnstest.NetA, name, dns.TypeAAAA, MaxMsg, false)
		want := dnstest.BigN
		if name == "bigcname.internal" {
			want++
		}
		if tcp.Truncated || len(tcp.Answer) != want {
			t.Fatalf("%s over TCP: tc=%v %d records", name, tcp.Truncated, len(tcp.Answer))
		}
	}
}

// TestAliasSwitch: a blue/green switch is a record change; the next query answers
// the new target (the chased-answer cache belongs to the old index).
func TestAliasSwitch(t *testing.T) {
	src := &swapSource{}
	src.set(dnstest.Fixture())
	r := New(src, nil)
	if m := query(t, r, dnstest.NetA, "www.internal", dns.TypeAAAA, MaxMsg, false); len(m.Answer) != 3 {
		t.Fatalf("before: %v", m.Answer)
	}
	snap := dnstest.Fixture()
	var recs []catalog.DNSRecord
	for _, rec := range dnstest.Records() {
		if rec.Name == "www.internal" && rec.Type == "ALIAS" {
			rec.Value = "big.internal"
		}
		recs = append(recs, rec)
	}
	catalog.AddRecords(snap, recs)
	src.set(snap)
	m := query(t, r, dnstest.NetA, "www.internal", dns.TypeAAAA, MaxMsg, false)
	if len(m.Answer) != dnstest.BigN {
		t.Fatalf("after the switch: %d records", len(m.Answer))
	}
	for _, rr := range m.Answer {
		if ip := rr.(*dns.AAAA).AAAA.String(); snap.Networks[dnstest.NetA].Apps["big"].Machines[0].Address.String() == ip {
			return
		}
	}
	t.Fatal("answer does not hold big's addresses")
}

// BenchmarkAnswerRecords: the run.sh query of an app with and without 10,000 custom
// records in the network, and custom names of each kind.
func BenchmarkAnswerRecords(b *testing.B) {
	base := dnstest.Large{Apps: 1000, PerApp: 10, Regions: []string{"ord", "ams", "syd", "fra"}}
	with := base
	with.Records = 10000
	for _, c := range []struct {
		name string
		l    dnstest.Large
		q    string
		t    uint16
	}{
		{"app/0-records", base, "app500.internal.", dns.TypeAAAA},
		{"app/10000-records", with, "app500.internal.", dns.TypeAAAA},
		{"region/0-records", base, "ord.app500.internal.", dns.TypeAAAA},
		{"region/10000-records", with, "ord.app500.internal.", dns.TypeAAAA},
		{"custom-aaaa", with, "rec5000.internal.", dns.TypeAAAA},
		{"custom-alias", with, "rec5006.internal.", dns.TypeAAAA},
		{"custom-cname", with, "rec5008.internal.", dns.TypeAAAA},
		{"custom-wildcard", with, "x.w5009.internal.", dns.TypeTXT},
		{"custom-nxdomain", with, "nope.internal.", dns.TypeAAAA},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := New(StaticSource{c.l.Build()}, nil)
			req := &Request{ID: 1, QType: c.t, QClass: dns.ClassINET, QName: appendName(nil, c.q), Limit: 1232, EDNS: true, UDPSize: 1232}
			buf := make([]byte, 0, 1232)
			if _, rcode, _ := r.Answer(buf, dnstest.NetA, c.q, req); rcode != 0 && c.name != "custom-nxdomain" {
				b.Fatalf("rcode %d", rcode)
			}
			b.ReportAllocs()
			for b.Loop() {
				buf, _, _ = r.Answer(buf[:0], dnstest.NetA, c.q, req)
			}
		})
	}
}

// TestAliasConcurrentSwitch: readers of an ALIAS and a CNAME race record switches;
// every answer is one of the two targets' (run with -race).
func TestAliasConcurrentSwitch(t *testing.T) {
	a := dnstest.Fixture()
	b := dnstest.Fixture()
	var recs []catalog.DNSRecord
	for _, rec := range dnstest.Records() {
		if rec.Name == "www.internal" && rec.Type == "ALIAS" {
			rec.Value = "big.internal"
		}
		recs = append(recs, rec)
	}
	catalog.AddRecords(b, recs)
	src := &swapSource{}
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
				n := len(query(t, r, dnstest.NetA, "www.internal", dns.TypeAAAA, MaxMsg, false).Answer)
				if n != 3 && n != dnstest.BigN {
					t.Errorf("inconsistent ALIAS answer: %d records", n)
					return
				}
				if m := query(t, r, dnstest.NetA, "chain.internal", dns.TypeAAAA, MaxMsg, false); len(m.Answer) != 4 {
					t.Errorf("CNAME chain: %v", m.Answer)
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
}
