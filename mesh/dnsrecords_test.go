package mesh

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func TestDNSRecords(t *testing.T) {
	c := newCluster(t, 2)
	h0, h1 := c.hosts[0], c.hosts[1]
	ctx := context.Background()
	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.Networks.Create(ctx, "acme", "staging"); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"api-blue", "api-green"} {
		if _, err := h0.Apps.Create(ctx, AppSpec{Name: app, Org: "acme", Network: ""}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged()
	ttl := 30
	add := func(h *testHost, network, name, typ, value string) error {
		_, err := h.DNSRecords.Add(ctx, DNSRecordSpec{Org: "acme", Network: network, Name: name, Type: typ, Value: value, TTL: &ttl})
		return err
	}
	if err := add(h1, "", "api", "ALIAS", "api-blue"); err != nil {
		t.Fatal(err)
	}
	if err := add(h1, "", "db", "AAAA", "fdaa::5"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		network, name, typ, value string
		code                      int
		msg                       string
	}{
		{"", "api-green", "AAAA", "fdaa::1", http.StatusBadRequest, "collides with app"},
		{"", "x.api-green", "TXT", "t", http.StatusBadRequest, "collides with app"},
		{"", "vms.x", "TXT", "t", http.StatusBadRequest, "generated"},
		{"", "_apps", "TXT", "t", http.StatusBadRequest, "generated"},
		{"", "x", "AAAA", "nope", http.StatusBadRequest, "not an IP"},
		{"", "api", "ALIAS", "api-blue", http.StatusConflict, "already exists"},
		{"", "api", "AAAA", "fdaa::1", http.StatusBadRequest, "cannot share"},
		{"", "db", "AAAA", "fdaa::5", http.StatusConflict, "already exists"},
		{"", "db", "CNAME", "web", http.StatusBadRequest, "only record"},
		{"", "x", "ALIAS", "nothing", http.StatusBadRequest, "does not exist"},
		{"", "db2", "CNAME", "db3", 0, ""},
		{"", "db3", "ALIAS", "db2", http.StatusBadRequest, "loop"},
		{"", "y", "ALIAS", "ord.api-green", 0, ""},
		{"staging", "z", "ALIAS", "api-green", http.StatusBadRequest, "does not exist"},
		{"nonet", "z", "AAAA", "fdaa::1", http.StatusNotFound, "not found"},
	}
	for _, tc := range cases {
		err := add(h0, tc.network, tc.name, tc.typ, tc.value)
		if tc.code == 0 {
			if err != nil {
				t.Errorf("%s %s %s: %v", tc.name, tc.typ, tc.value, err)
			}
			continue
		}
		if err == nil || StatusCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %s %s: err %v (status %d), want %d %q", tc.name, tc.typ, tc.value, err, StatusCode(err), tc.code, tc.msg)
		}
	}
	// Replicated: h0 sees h1's records in its snapshot, in the default network only.
	c.eventually(5*time.Second, "records replicated", func() bool {
		nw, _ := networkByName(h0.cat, "acme", "default")
		nv := h0.cat.Snapshot().Networks[nw.ID]
		return nv != nil && nv.Records != nil && len(nv.Records.List) == 4
	})
	st, _ := networkByName(h0.cat, "acme", "staging")
	if h0.cat.Snapshot().Networks[st.ID].Records != nil {
		t.Fatal("staging sees default's records")
	}
	// An app created later under a record's name is refused.
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "db", Org: "acme", Network: ""}); err == nil || StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "taken by the DNS record db.internal") {
		t.Fatalf("app over a record: %v", err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "db", Org: "acme", Network: "staging"}); err != nil {
		t.Fatalf("the same name in another network: %v", err)
	}
	list, err := h0.DNSRecords.List("acme")
	if err != nil || len(list) != 4 || list[0].Name != "api.internal" || list[0].TTL != 30 {
		t.Fatalf("list: %v %+v", err, list)
	}
	// Two hosts switching one ALIAS at once: they meet on one record, so one target
	// wins everywhere and a loser is told (409).
	for round, targets := range [][2]string{{"api-green", "y"}, {"api-blue", "api-green"}} {
		errs := make([]error, 2)
		done := make(chan int)
		for i, h := range []*testHost{h0, h1} {
			go func() { errs[i] = add(h, "", "api", "ALIAS", targets[i]); done <- i }()
		}
		<-done
		<-done
		c.waitConverged()
		var aliases []string
		for _, r := range h0.cat.List(catalog.KindDNSRecord) {
			if r.DNS.Name == "api.internal" {
				aliases = append(aliases, r.DNS.Value)
			}
		}
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if StatusCode(err) != http.StatusConflict {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		// Both succeed when they did not overlap (two switches in a row); never
		// two live ALIASes of one name.
		if ok == 0 || len(aliases) != 1 {
			t.Fatalf("round %d: %d switches reported success (%v), api.internal is %v", round, ok, errs, aliases)
		}
	}
	if err := add(h0, "", "api", "ALIAS", "api-blue"); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	// Blue/green: adding another ALIAS switches it in one write.
	if err := add(h0, "", "api", "ALIAS", "api-green"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.DNSRecords.Remove(ctx, DNSRecordFilter{Org: "acme", Name: "db", Type: "AAAA", Value: "FDAA::5"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.DNSRecords.Remove(ctx, DNSRecordFilter{Org: "acme", Name: "db"}); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("removing nothing: %v", err)
	}
	c.waitConverged()
	list, _ = h1.DNSRecords.List("")
	var got []string
	for _, r := range list {
		got = append(got, r.Name+" "+r.Type+" "+r.Value)
	}
	want := "api.internal ALIAS api-green.internal,db2.internal CNAME db3.internal,y.internal ALIAS ord.api-green.internal"
	if strings.Join(got, ",") != want {
		t.Fatalf("after the switch on h1: %q", got)
	}
	if _, err := h1.Apps.Create(ctx, AppSpec{Name: "db", Org: "acme", Network: ""}); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("app after its record was removed: %v", err)
	}
	// Removing an org takes its records with its networks.
	if _, err := h0.Orgs.Create(ctx, "tmp"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.DNSRecords.Add(ctx, DNSRecordSpec{Org: "tmp", Name: "x", Type: "TXT", Value: "y"}); err != nil {
		t.Fatal(err)
	}
	if err := h0.Orgs.Remove(ctx, "tmp"); err != nil {
		t.Fatal(err)
	}
	for _, r := range h0.cat.List(catalog.KindDNSRecord) {
		if r.DNS.Org == "tmp" {
			t.Fatalf("record of a removed org left: %s", r.Key)
		}
	}
}
