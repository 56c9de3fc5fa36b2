package schema

import (
	"errors"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func TestOrgLimitsUpdateApply(t *testing.T) {
	n := func(v int) *int { return &v }
	cur := catalog.OrgLimits{Machines: 5, Peers: 3}
	for _, tc := range []struct {
		name string
		u    OrgLimitsUpdate
		want catalog.OrgLimits
		err  string
	}{
		{"one field, the rest kept", OrgLimitsUpdate{Apps: n(7)}, catalog.OrgLimits{Machines: 5, Apps: 7, Peers: 3}, ""},
		{"0 removes the override", OrgLimitsUpdate{Machines: n(0)}, catalog.OrgLimits{Peers: 3}, ""},
		{"all", OrgLimitsUpdate{Machines: n(1), Apps: n(2), DNSRecords: n(3), Peers: n(4)}, catalog.OrgLimits{Machines: 1, Apps: 2, DNSRecords: 3, Peers: 4}, ""},
		{"nothing", OrgLimitsUpdate{}, cur, "nothing to set"},
		{"negative", OrgLimitsUpdate{DNSRecords: n(-1)}, cur, "invalid --dns-records -1"},
		{"absurd", OrgLimitsUpdate{Peers: n(maxOverride + 1)}, cur, "invalid --peers"},
	} {
		got, err := tc.u.Apply(cur)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !isStatus(err, 400) {
				t.Errorf("%s: err %v, want 400 with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
}

func isStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
