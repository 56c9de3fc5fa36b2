// Package quota owns the limits on what one tenant may put in the catalog (SPEC
// §10): services and metadata entries per machine and the encoded size of any one
// record, which every agent checks at its door and again on gossip input (a record
// over them costs every host memory, whoever wrote it); and per-org counts of
// machines, apps, DNS records and peers, checked at the door of the agent that
// creates. It decides and words the refusal; it does not read flags, store
// anything or answer HTTP.
//
// Per-org counts are taken from the creating agent's catalog, so creates running
// at once on several hosts may each see room for one more: an org can overshoot a
// limit by at most the number of concurrent creates.
package quota

import (
	"fmt"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Limits are the cluster-wide limits; zero fields take the defaults.
type Limits struct {
	ServicesPerMachine int `json:"services_per_machine"`
	MetadataPerMachine int `json:"metadata_per_machine"`
	RecordBytes        int `json:"record_bytes"` // encoded size of one record
	Machines           int `json:"machines"`     // per org
	Apps               int `json:"apps"`         // per org
	DNSRecords         int `json:"dns_records"`  // per org
	Peers              int `json:"peers"`        // per org
}

// Defaults: generous for a real org, small enough that no tenant can make every
// host hold gigabytes (10,000 machines of ≤ 16 KiB is at most 160 MiB per org; a
// typical machine record is ~110 bytes). A function, so no caller can change them.
func Defaults() Limits {
	return Limits{
		ServicesPerMachine: 64,
		MetadataPerMachine: 32,
		RecordBytes:        16 << 10,
		Machines:           10000,
		Apps:               1000,
		DNSRecords:         10000,
		Peers:              1000,
	}
}

// WithDefaults fills zero fields from Defaults.
func (l Limits) WithDefaults() Limits {
	d := Defaults()
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&l.ServicesPerMachine, d.ServicesPerMachine)
	pick(&l.MetadataPerMachine, d.MetadataPerMachine)
	pick(&l.RecordBytes, d.RecordBytes)
	pick(&l.Machines, d.Machines)
	pick(&l.Apps, d.Apps)
	pick(&l.DNSRecords, d.DNSRecords)
	pick(&l.Peers, d.Peers)
	return l
}

// Exceeded is a refusal: which limit, the current count and the limit.
type Exceeded struct {
	Limit   string // "machines per org", "services per machine", …
	Subject string // "org acme", "machine 0123…"
	Count   int
	Max     int
	// Org is set when the limit is the org's own override (orgs set-limits), so
	// the refusal names the command that changes it, not the agent flag.
	Org string
}

func (e *Exceeded) Error() string {
	if e.Org != "" {
		return fmt.Sprintf("limit reached: %s has %d %s, the limit is %d (this org's override; ask an operator to raise it: dogwood orgs set-limits %s --%s N)",
			e.Subject, e.Count, e.Limit, e.Max, e.Org, flagName(e.Limit))
	}
	return fmt.Sprintf("limit reached: %s has %d %s, the limit is %d (ask an operator to raise it: agent flag --limit-%s or config)",
		e.Subject, e.Count, e.Limit, e.Max, flagName(e.Limit))
}

func flagName(limit string) string {
	switch limit {
	case "services":
		return "services-per-machine"
	case "metadata entries":
		return "metadata-per-machine"
	case "encoded bytes":
		return "record-bytes"
	case "DNS records":
		return "dns-records"
	}
	return limit
}

// CheckRecord refuses a record over a per-record limit. It is cheap enough for
// every record gossip hands over.
func (l Limits) CheckRecord(r *catalog.Record) error {
	l = l.WithDefaults()
	if m := r.Machine; m != nil && m.MachineAttrs != nil {
		if n := len(m.Services); n > l.ServicesPerMachine {
			return &Exceeded{Limit: "services", Subject: "machine " + m.ID, Count: n, Max: l.ServicesPerMachine}
		}
		if n := len(m.Metadata); n > l.MetadataPerMachine {
			return &Exceeded{Limit: "metadata entries", Subject: "machine " + m.ID, Count: n, Max: l.MetadataPerMachine}
		}
	}
	if n := len(catalog.AppendRecord(nil, r)); n > l.RecordBytes {
		return &Exceeded{Limit: "encoded bytes", Subject: fmt.Sprintf("%s record %s", r.Kind, r.Key), Count: n, Max: l.RecordBytes}
	}
	return nil
}

// Kind names a per-org limit.
type Kind int

const (
	Machines Kind = iota
	Apps
	DNSRecords
	Peers
)

func (k Kind) String() string {
	return [...]string{"machines", "apps", "DNS records", "peers"}[k]
}

func (l Limits) max(k Kind) int {
	l = l.WithDefaults()
	return [...]int{l.Machines, l.Apps, l.DNSRecords, l.Peers}[k]
}

// CheckOrg refuses one more object of kind in org when the org already holds
// count of them: the org's override of that limit when it has one (o may be nil),
// else the cluster-wide one.
func (l Limits) CheckOrg(k Kind, org string, o *catalog.OrgLimits, count int) error {
	m, own := l.max(k), Override(o, k)
	if own > 0 {
		m = own
	}
	if count >= m {
		e := &Exceeded{Limit: k.String(), Subject: "org " + org, Count: count, Max: m}
		if own > 0 {
			e.Org = org
		}
		return e
	}
	return nil
}

// Override is o's value for k; 0 (or a nil o) means "the cluster default".
func Override(o *catalog.OrgLimits, k Kind) int {
	if o == nil {
		return 0
	}
	return [...]int{o.Machines, o.Apps, o.DNSRecords, o.Peers}[k]
}

// Effective is what an org may hold of each kind, and which of them are the org's
// own overrides rather than the cluster defaults.
type Effective struct {
	Machines   int      `json:"machines"`
	Apps       int      `json:"apps"`
	DNSRecords int      `json:"dns_records"`
	Peers      int      `json:"peers"`
	Overrides  []string `json:"overrides"` // "machines", "apps", "dns_records", "peers"
}

// ForOrg is the effective per-org limits of an org with overrides o (may be nil).
func (l Limits) ForOrg(o *catalog.OrgLimits) Effective {
	e := Effective{Overrides: []string{}}
	vals := [...]*int{&e.Machines, &e.Apps, &e.DNSRecords, &e.Peers}
	for k := Machines; k <= Peers; k++ {
		*vals[k] = l.max(k)
		if v := Override(o, k); v > 0 {
			*vals[k] = v
			e.Overrides = append(e.Overrides, k.JSONName())
		}
	}
	return e
}

// JSONName is k's name in JSON and in `orgs set-limits` flags (with '-').
func (k Kind) JSONName() string {
	return [...]string{"machines", "apps", "dns_records", "peers"}[k]
}

// Count counts the live records of org that kind k limits.
func Count(live []*catalog.Record, k Kind, org string) int {
	n := 0
	for _, r := range live {
		var o string
		switch {
		case k == Machines && r.Machine != nil && r.Machine.MachinePlace != nil:
			o = r.Machine.Org
		case k == Apps && r.App != nil && !r.App.IsLimits():
			o = r.App.Org
		case k == DNSRecords && r.DNS != nil:
			o = r.DNS.Org
		case k == Peers && r.Peer != nil:
			o = r.Peer.Org
		default:
			continue
		}
		if o == org && !r.Deleted {
			n++
		}
	}
	return n
}

// RecordKind is the catalog kind whose records k counts.
func (k Kind) RecordKind() catalog.Kind {
	return [...]catalog.Kind{catalog.KindMachine, catalog.KindApp, catalog.KindDNSRecord, catalog.KindPeer}[k]
}
