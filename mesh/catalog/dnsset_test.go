package catalog

import "testing"

func TestDNSRecordsInSnapshot(t *testing.T) {
	c := New("h")
	c.Apply(&Record{Kind: KindNetwork, Key: "acme/default", Gen: 1, Created: st(1, 1), Version: st(1, 1), Network: &Network{Org: "acme", Name: "default", ID: 7}})
	c.Apply(&Record{Kind: KindNetwork, Key: "acme/other", Gen: 1, Created: st(1, 1), Version: st(1, 1), Network: &Network{Org: "acme", Name: "other", ID: 8}})
	a := dnsRec(t, 7, "api", "ALIAS", "web", st(2, 1), false)
	b := dnsRec(t, 7, "db", "AAAA", "fdaa::1", st(3, 1), false)
	for _, r := range []*Record{a, b} {
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		c.Apply(r)
	}
	s1 := c.Snapshot()
	if rs := s1.Networks[7].Records; rs == nil || len(rs.List) != 2 || rs.List[0].Name != "api.internal" {
		t.Fatalf("records = %+v", rs)
	}
	if s1.Networks[8].Records != nil {
		t.Fatal("another network sees the records")
	}
	// An app change in the network keeps the record set (consumers cache by pointer).
	c.Apply(&Record{Kind: KindApp, Key: "web", Gen: 1, Created: st(4, 1), Version: st(4, 1), App: &App{Name: "web", Org: "acme", Network: "default", NetworkID: 7}})
	s2 := c.Snapshot()
	if s2.Networks[7] == s1.Networks[7] || s2.Networks[7].Records != s1.Networks[7].Records {
		t.Fatal("record set not shared across an unrelated change")
	}
	del := *b
	del.Deleted, del.Version = true, st(5, 1)
	c.Apply(&del)
	s3 := c.Snapshot()
	if rs := s3.Networks[7].Records; rs == nil || len(rs.List) != 1 || rs.List[0].Type != "ALIAS" {
		t.Fatalf("after delete: %+v", rs)
	}

	bad := dnsRec(t, 7, "x", "AAAA", "fdaa::1", st(6, 1), false)
	bad.DNS.Value = "FDAA::1"
	if err := bad.Validate(); err == nil {
		t.Fatal("non-canonical record validated")
	}
	bad = dnsRec(t, 7, "x", "AAAA", "fdaa::1", st(6, 1), false)
	bad.Key = DNSRecordKey(8, "x.internal", "AAAA", "fdaa::1")
	if err := bad.Validate(); err == nil {
		t.Fatal("record with a key of another network validated")
	}
}

func dnsRec(t *testing.T, net uint32, name, typ, value string, c Stamp, deleted bool) *Record {
	t.Helper()
	d, err := NormalizeDNSRecord(name, typ, value, -1)
	if err != nil {
		t.Fatal(err)
	}
	d.NetworkID, d.Org, d.Network = net, "acme", "default"
	return &Record{Kind: KindDNSRecord, Key: DNSRecordKey(net, d.Name, d.Type, d.Value), Gen: 1, Created: st(1, 1), Version: c, Deleted: deleted, DNS: &d}
}
