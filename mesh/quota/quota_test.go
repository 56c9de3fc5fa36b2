package quota

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func machine(services, metadata int) *catalog.Record {
	a := &catalog.MachineAttrs{Metadata: map[string]string{}}
	for i := 0; i < services; i++ {
		a.Services = append(a.Services, catalog.Service{Name: fmt.Sprintf("s%d", i), Proto: "tcp", Port: uint16(i + 1)})
	}
	for i := 0; i < metadata; i++ {
		a.Metadata[fmt.Sprintf("k%d", i)] = "v"
	}
	m := &catalog.Machine{ID: "00000000010001", MachinePlace: &catalog.MachinePlace{App: "web", Org: "acme", Network: "default"}, MachineAttrs: a}
	return &catalog.Record{Kind: catalog.KindMachine, Key: m.ID, Machine: m}
}

func TestCheckRecord(t *testing.T) {
	for _, tc := range []struct {
		name     string
		l        Limits
		r        *catalog.Record
		limit    string
		exceeded bool
	}{
		{"defaults, small machine", Limits{}, machine(3, 3), "", false},
		{"64 services", Limits{}, machine(64, 0), "", false},
		{"65 services", Limits{}, machine(65, 0), "services", true},
		{"33 metadata entries", Limits{}, machine(0, 33), "metadata entries", true},
		{"record bytes", Limits{RecordBytes: 200}, machine(40, 0), "encoded bytes", true},
		{"raised", Limits{ServicesPerMachine: 100, RecordBytes: 1 << 20}, machine(65, 0), "", false},
	} {
		err := tc.l.CheckRecord(tc.r)
		var e *Exceeded
		if errors.As(err, &e) != tc.exceeded || (tc.exceeded && e.Limit != tc.limit) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestCheckOrgSaysLimitAndCount(t *testing.T) {
	l := Limits{Machines: 3}
	if err := l.CheckOrg(Machines, "acme", nil, 2); err != nil {
		t.Fatal(err)
	}
	err := l.CheckOrg(Machines, "acme", nil, 3)
	if err == nil || !strings.Contains(err.Error(), "org acme has 3 machines, the limit is 3") || !strings.Contains(err.Error(), "--limit-machines") {
		t.Fatalf("%v", err)
	}
	if err := (Limits{}).CheckOrg(Peers, "acme", nil, Defaults().Peers-1); err != nil {
		t.Fatalf("default peers: %v", err)
	}
	rs := []*catalog.Record{machine(0, 0), machine(0, 0), {Kind: catalog.KindApp, App: &catalog.App{Org: "acme"}}}
	rs[1].Deleted = true
	if n := Count(rs, Machines, "acme"); n != 1 {
		t.Fatalf("count %d", n)
	}
}

func TestOrgOverridePrecedence(t *testing.T) {
	l := Limits{Machines: 3, Apps: 10}
	for _, tc := range []struct {
		name    string
		o       *catalog.OrgLimits
		k       Kind
		count   int
		refused bool
		own     bool
	}{
		{"no override: cluster limit", nil, Machines, 3, true, false},
		{"no override: under", nil, Machines, 2, false, false},
		{"override raises", &catalog.OrgLimits{Machines: 5}, Machines, 4, false, false},
		{"override raised: at it", &catalog.OrgLimits{Machines: 5}, Machines, 5, true, true},
		{"override lowers", &catalog.OrgLimits{Apps: 1}, Apps, 1, true, true},
		{"zero is the default", &catalog.OrgLimits{Apps: 0, Machines: 9}, Apps, 9, false, false},
		{"zero is the default: at it", &catalog.OrgLimits{Machines: 9}, Apps, 10, true, false},
		{"default of a kind without flag", &catalog.OrgLimits{Machines: 9}, Peers, Defaults().Peers, true, false},
	} {
		err := l.CheckOrg(tc.k, "acme", tc.o, tc.count)
		if (err != nil) != tc.refused {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err != nil {
			e := err.(*Exceeded)
			if (e.Org != "") != tc.own || e.Count != tc.count {
				t.Errorf("%s: %+v", tc.name, e)
			}
			if tc.own && !strings.Contains(err.Error(), "orgs set-limits acme --"+flagName(tc.k.String())) {
				t.Errorf("%s: refusal does not name the command: %v", tc.name, err)
			}
		}
	}
	e := l.ForOrg(&catalog.OrgLimits{Apps: 2, Peers: 7})
	want := Effective{Machines: 3, Apps: 2, DNSRecords: Defaults().DNSRecords, Peers: 7, Overrides: []string{"apps", "peers"}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("ForOrg: %+v, want %+v", e, want)
	}
	if e := l.ForOrg(nil); len(e.Overrides) != 0 || e.Machines != 3 {
		t.Errorf("ForOrg(nil): %+v", e)
	}
}

func TestCountSkipsLimitsCarrier(t *testing.T) {
	live := []*catalog.Record{
		{Kind: catalog.KindApp, Key: "acme/web", App: &catalog.App{Name: "web", Org: "acme"}},
		{Kind: catalog.KindApp, Key: catalog.LimitsKey("acme"), App: &catalog.App{Name: catalog.LimitsApp, Org: "acme", Limits: &catalog.OrgLimits{Apps: 1}}},
	}
	if n := Count(live, Apps, "acme"); n != 1 {
		t.Errorf("counted %d apps, want 1 (the limits carrier is not an app)", n)
	}
}
