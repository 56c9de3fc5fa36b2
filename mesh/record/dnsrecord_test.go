package record

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeDNSRecord(t *testing.T) {
	long := strings.Repeat("a", 63)
	cases := []struct {
		name, typ, value string
		ttl              int
		want             DNSRecord // zero Name: an error containing err
		err              string
	}{
		{"api", "alias", "api-green", -1, DNSRecord{Name: "api.internal", Type: "ALIAS", Value: "api-green.internal", TTL: 5}, ""},
		{"API.Internal.", "AAAA", "FDAA:0:18::5", 30, DNSRecord{Name: "api.internal", Type: "AAAA", Value: "fdaa:0:18::5", TTL: 30}, ""},
		{"db.internal", "A", "10.0.0.7", 0, DNSRecord{Name: "db.internal", Type: "A", Value: "10.0.0.7", TTL: 0}, ""},
		{"ext", "CNAME", "DB.Example.COM.", -1, DNSRecord{Name: "ext.internal", Type: "CNAME", Value: "db.example.com", TTL: 5}, ""},
		{"www", "CNAME", "web", -1, DNSRecord{Name: "www.internal", Type: "CNAME", Value: "web.internal", TTL: 5}, ""},
		{"*.dev", "TXT", "hello world", -1, DNSRecord{Name: "*.dev.internal", Type: "TXT", Value: "hello world", TTL: 5}, ""},
		{"_pg._tcp.db", "SRV", " 10  5 5432 db.example.com. ", -1, DNSRecord{Name: "_pg._tcp.db.internal", Type: "SRV", Value: "10 5 5432 db.example.com", TTL: 5}, ""},
		{"_x._tcp.db", "SRV", "0 0 0 .", -1, DNSRecord{Name: "_x._tcp.db.internal", Type: "SRV", Value: "0 0 0 .", TTL: 5}, ""},
		{"a.b.c.d.e.f.g", "AAAA", "::1", -1, DNSRecord{Name: "a.b.c.d.e.f.g.internal", Type: "AAAA", Value: "::1", TTL: 5}, ""},

		{"", "A", "10.0.0.1", -1, DNSRecord{}, "empty"},
		{"internal", "A", "10.0.0.1", -1, DNSRecord{}, "apex"},
		{"a..b", "A", "10.0.0.1", -1, DNSRecord{}, "empty label"},
		{"we b", "A", "10.0.0.1", -1, DNSRecord{}, "labels use"},
		{long + "a", "A", "10.0.0.1", -1, DNSRecord{}, "longer than 63"},
		{strings.Repeat(long+".", 4), "A", "10.0.0.1", -1, DNSRecord{}, "longer than 200"},
		{"a.*.dev", "A", "10.0.0.1", -1, DNSRecord{}, "first label"},
		{"*", "A", "10.0.0.1", -1, DNSRecord{}, "wildcard directly"},
		{"_apps", "TXT", "x", -1, DNSRecord{}, "generated name _apps"},
		{"x._peer", "AAAA", "::1", -1, DNSRecord{}, "generated name _peer"},
		{"_instances", "TXT", "x", -1, DNSRecord{}, "generated name _instances"},
		{"all._instances", "TXT", "x", -1, DNSRecord{}, "generated name _instances"},
		{"_records", "TXT", "x", -1, DNSRecord{}, "generated name _records"},
		{"vms.db", "TXT", "x", -1, DNSRecord{}, "shape of a generated name (vms"},
		{"all.regions.db", "TXT", "x", -1, DNSRecord{}, "shape of a generated name (regions"},
		{"global.db", "AAAA", "::1", -1, DNSRecord{}, "shape of a generated name (global"},
		{"all.db", "AAAA", "::1", -1, DNSRecord{}, "shape of a generated name (all"},
		{"*.vm.db", "AAAA", "::1", -1, DNSRecord{}, "shape of a generated name (vm"},
		{"top1.nearest.of.db", "AAAA", "::1", -1, DNSRecord{}, "shape of a generated name (of"},
		{"x.process.db", "AAAA", "::1", -1, DNSRecord{}, "shape of a generated name (process"},
		{"v.k.kv._metadata.db", "AAAA", "::1", -1, DNSRecord{}, "shape of a generated name (_metadata"},

		{"x", "MX", "10 mail", -1, DNSRecord{}, "use one of"},
		{"x", "A", "::1", -1, DNSRecord{}, "not an IPv4"},
		{"x", "A", "10.0.0", -1, DNSRecord{}, "not an IP"},
		{"x", "AAAA", "10.0.0.1", -1, DNSRecord{}, "not an IPv6"},
		{"x", "AAAA", "::ffff:10.0.0.1", -1, DNSRecord{}, "not an IPv6"},
		{"x", "AAAA", "fe80::1%eth0", -1, DNSRecord{}, "not an IP"},
		{"x", "CNAME", "x", -1, DNSRecord{}, "itself"},
		{"x", "CNAME", "", -1, DNSRecord{}, "empty"},
		{"x", "CNAME", "a b.com", -1, DNSRecord{}, "labels use"},
		{"x", "ALIAS", "ord.web", -1, DNSRecord{Name: "x.internal", Type: "ALIAS", Value: "ord.web.internal", TTL: 5}, ""},
		{"x", "ALIAS", "*.dev", -1, DNSRecord{}, "must name"},
		{"x", "ALIAS", "x.internal", -1, DNSRecord{}, "itself"},
		{"x", "ALIAS", "internal.", -1, DNSRecord{}, "must name"},
		{"x", "TXT", "", -1, DNSRecord{}, "empty"},
		{"x", "TXT", strings.Repeat("t", MaxTXT+1), -1, DNSRecord{}, "more than"},
		{"x", "TXT", "a\nb", -1, DNSRecord{}, "control"},
		{"x", "TXT", "\xff", -1, DNSRecord{}, "UTF-8"},
		{"x", "SRV", "10 5 5432", -1, DNSRecord{}, "PRIORITY WEIGHT PORT TARGET"},
		{"x", "SRV", "10 5 65536 db", -1, DNSRecord{}, "port"},
		{"x", "SRV", "-1 5 80 db", -1, DNSRecord{}, "priority"},
		{"x", "SRV", "1 5 80 d_b!", -1, DNSRecord{}, "labels use"},
		{"x", "A", "10.0.0.1", MaxDNSTTL + 1, DNSRecord{}, "ttl"},
	}
	for _, c := range cases {
		got, err := NormalizeDNSRecord(c.name, c.typ, c.value, c.ttl)
		if c.err != "" {
			var de *DNSRecordError
			if err == nil || !errors.As(err, &de) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q %s %q: err = %v, want one containing %q", c.name, c.typ, c.value, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q %s %q: got %+v, %v; want %+v", c.name, c.typ, c.value, got, err, c.want)
		}
	}
}

func TestCheckDNSCoexist(t *testing.T) {
	rec := func(name, typ, value string) *DNSRecord {
		r, err := NormalizeDNSRecord(name, typ, value, -1)
		if err != nil {
			t.Fatal(err)
		}
		return &r
	}
	existing := []*DNSRecord{
		rec("api", "ALIAS", "api-green"), rec("api", "TXT", "owner=team-a"),
		rec("www", "CNAME", "web"), rec("db", "AAAA", "fdaa::1"), rec("db", "AAAA", "fdaa::2"),
	}
	cases := []struct {
		r   *DNSRecord
		err string
	}{
		{rec("api", "TXT", "second"), ""},
		{rec("api", "SRV", "0 0 80 api"), ""},
		{rec("db", "AAAA", "fdaa::3"), ""},
		{rec("db", "A", "10.0.0.1"), ""},
		{rec("other", "CNAME", "web"), ""},
		{rec("db", "AAAA", "fdaa::1"), "already exists"},
		{rec("api", "ALIAS", "api-blue"), "already an ALIAS"},
		{rec("api", "AAAA", "fdaa::9"), "cannot share"},
		{rec("db", "ALIAS", "web"), "cannot share"},
		{rec("www", "TXT", "x"), "only record"},
		{rec("db", "CNAME", "web"), "only record"},
	}
	for _, c := range cases {
		err := CheckDNSCoexist(existing, c.r)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s %s %s: err = %v, want %q", c.r.Name, c.r.Type, c.r.Value, err, c.err)
		}
	}
}

// FuzzNormalizeDNSRecord: whatever the input, an accepted record is canonical (it
// normalizes to itself, so gossip validation accepts it), fits a catalog key, and
// never names a generated form.
func FuzzNormalizeDNSRecord(f *testing.F) {
	for _, s := range [][3]string{{"api", "ALIAS", "api-green"}, {"*.dev", "TXT", "x y"}, {"_pg._tcp.db", "SRV", "1 2 3 db.example.com."},
		{"DB.internal.", "AAAA", "FDAA::1"}, {"x", "A", "10.0.0.1"}, {"ext", "CNAME", "Example.COM."}, {"vms.x", "TXT", "t"}} {
		f.Add(s[0], s[1], s[2], 5)
	}
	f.Fuzz(func(t *testing.T, name, typ, value string, ttl int) {
		r, err := NormalizeDNSRecord(name, typ, value, ttl)
		if err != nil {
			var de *DNSRecordError
			if !errors.As(err, &de) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		again, err := NormalizeDNSRecord(r.Name, r.Type, r.Value, int(r.TTL))
		if err != nil || again != r {
			t.Fatalf("not idempotent: %+v → %+v, %v", r, again, err)
		}
		rec := &Record{Kind: KindDNSRecord, Key: DNSRecordKey(0xffffffff, r.Name, r.Type, r.Value), Created: st(1, 1), Version: st(1, 1), DNS: &r}
		r.NetworkID = 0xffffffff
		if err := rec.Validate(); err != nil {
			t.Fatalf("accepted record does not validate: %v", err)
		}
		labels := strings.Split(strings.TrimSuffix(r.Name, ".internal"), ".")
		if last := labels[len(labels)-1]; reservedLast[last] || last == "*" || (len(labels) > 1 && reservedUnder[labels[len(labels)-2]]) {
			t.Fatalf("generated form accepted: %s", r.Name)
		}
	})
}
func st(c uint64, n uint32) Stamp { return Stamp{Clock: c, Node: n} }
