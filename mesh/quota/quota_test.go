package quota

import (
	"errors"
	"fmt"
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
	if err := l.CheckOrg(Machines, "acme", 2); err != nil {
		t.Fatal(err)
	}
	err := l.CheckOrg(Machines, "acme", 3)
	if err == nil || !strings.Contains(err.Error(), "org acme has 3 machines, the limit is 3") || !strings.Contains(err.Error(), "--limit-machines") {
		t.Fatalf("%v", err)
	}
	if err := (Limits{}).CheckOrg(Peers, "acme", Defaults.Peers-1); err != nil {
		t.Fatalf("default peers: %v", err)
	}
	rs := []*catalog.Record{machine(0, 0), machine(0, 0), {Kind: catalog.KindApp, App: &catalog.App{Org: "acme"}}}
	rs[1].Deleted = true
	if n := Count(rs, Machines, "acme"); n != 1 {
		t.Fatalf("count %d", n)
	}
}
