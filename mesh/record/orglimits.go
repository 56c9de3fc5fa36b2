package record

import (
	"fmt"
	"strconv"
	"strings"
)

// An org's quota overrides (`orgs set-limits`) need a carrier the previous release
// keeps and forwards unchanged, and the org record has none: its body is the slug,
// which must equal the record key (Validate), and created_at, a time whose fields
// hold only a real time; a new field or trailing bytes make the previous release's
// decoder refuse the record (and the batch it came in); a new record kind or body
// bit is refused the same way. So the overrides ride in a record of a kind the
// previous release already reads, with a key no user can name: an app called
// "dogwood.limits" in the org (user app names are DNS labels, no '.', so no create,
// update or destroy from either release can address it), in the org's default
// network, with no machines. Its request id, a string the previous release only
// compares with a retried create's, holds the values; this release lifts them into
// App.Limits when it decodes and hides the app from lists, counts and lookups.
//
// Every host writes the same identity: the carrier copies the org record's
// generation and created stamp, so two hosts that set limits at once write two
// versions of one record and the newer version wins everywhere, as any update does.
// An org record without overrides is unchanged, byte for byte.
const (
	// LimitsApp is the name of an org's limits carrier.
	LimitsApp    = "dogwood.limits"
	limitsPrefix = "dogwood.limits:"
)

// OrgLimits are an org's overrides of the cluster-wide per-org quotas; zero means
// "the cluster default".
type OrgLimits struct {
	Machines   int `json:"machines,omitempty"`
	Apps       int `json:"apps,omitempty"`
	DNSRecords int `json:"dns_records,omitempty"`
	Peers      int `json:"peers,omitempty"`
}

// LimitsKey is the key of org's limits carrier (an app record).
func LimitsKey(org string) string { return AppKey(org, LimitsApp) }

// IsLimits reports whether a is an org's limits carrier rather than an app.
func (a *App) IsLimits() bool { return a.Name == LimitsApp }

// String is the carrier's form: fixed order, every field, so equal limits encode
// equally.
func (l OrgLimits) String() string {
	return fmt.Sprintf("machines=%d,apps=%d,dns_records=%d,peers=%d", l.Machines, l.Apps, l.DNSRecords, l.Peers)
}

// parseOrgLimits reads String's form; unknown names (a newer release's) are
// skipped, so its limits this release knows still apply.
func parseOrgLimits(s string) (OrgLimits, bool) {
	var l OrgLimits
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return OrgLimits{}, false
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return OrgLimits{}, false
		}
		switch k {
		case "machines":
			l.Machines = n
		case "apps":
			l.Apps = n
		case "dns_records":
			l.DNSRecords = n
		case "peers":
			l.Peers = n
		}
	}
	return l, true
}

// LimitsRecord is the carrier of org's limits: version is the write's stamp, org
// the org's live record, nw the network the carrier sits in.
func LimitsRecord(org *Record, nw *Network, l OrgLimits, version Stamp) *Record {
	return &Record{Kind: KindApp, Key: LimitsKey(org.Key), Gen: org.Gen, Created: org.Created, Version: version,
		App: &App{Name: LimitsApp, Org: org.Key, Network: nw.Name, NetworkID: nw.ID, Limits: &l}}
}
