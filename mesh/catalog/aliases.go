package catalog

import "github.com/dogwood/dogwood/mesh/record"

// The record types live in mesh/record, which anything that only carries records
// (gossip) imports without the catalog; these names keep them at home here.

// A record, its identity and its place in the merge order; its kinds.
type (
	Record = record.Record
	ID     = record.ID
	Kind   = record.Kind
	Header = record.Header
	Stamp  = record.Stamp
)

const (
	KindHost, KindOrg, KindNetwork, KindApp, KindMachine, KindPeer, KindDNSRecord = record.KindHost, record.KindOrg, record.KindNetwork, record.KindApp, record.KindMachine, record.KindPeer, record.KindDNSRecord
	SubBuckets                                                                    = record.SubBuckets
)

// Hosts, orgs, networks and DNS records; host statuses.
type (
	Host           = record.Host
	Org            = record.Org
	OrgLimits      = record.OrgLimits
	Network        = record.Network
	DNSRecord      = record.DNSRecord
	DNSRecordError = record.DNSRecordError
)

const (
	StatusAlive, StatusSuspect, StatusFailed, StatusLeft = record.StatusAlive, record.StatusSuspect, record.StatusFailed, record.StatusLeft
	LimitsApp, DefaultDNSTTL                             = record.LimitsApp, record.DefaultDNSTTL
)

// Apps, machines and peers; machine states, sources and health.
type (
	App          = record.App
	Service      = record.Service
	Machine      = record.Machine
	MachinePlace = record.MachinePlace
	MachineAttrs = record.MachineAttrs
	Peer         = record.Peer
)

const (
	StateStarted, StateStopped                       = record.StateStarted, record.StateStopped
	SourceAPI, SourceCLI, SourceCNI, MetaContainerID = record.SourceAPI, record.SourceCLI, record.SourceCNI, record.MetaContainerID
	HealthPassing, HealthCritical, HealthUnknown     = record.HealthPassing, record.HealthCritical, record.HealthUnknown
	WhenNoneAll, WhenNoneNone                        = record.WhenNoneAll, record.WhenNoneNone
)

// Health checks and their settings.
type (
	Check    = record.Check
	Duration = record.Duration
)

const (
	CheckHTTP, CheckTCP, MaxChecks                                                = record.CheckHTTP, record.CheckTCP, record.MaxChecks
	DefaultCheckInterval, DefaultCheckTimeout, DefaultCheckRise, DefaultCheckFall = record.DefaultCheckInterval, record.DefaultCheckTimeout, record.DefaultCheckRise, record.DefaultCheckFall
)

// Forwarders to mesh/record, where the functions live with their types.

func AggregateHealth(checks []Check) string { return record.AggregateHealth(checks) }

func AppKey(org, name string) string { return record.AppKey(org, name) }

func AppendRecord(b []byte, r *Record) []byte { return record.AppendRecord(b, r) }

func AppendRecords(b []byte, rs []*Record) []byte { return record.AppendRecords(b, rs) }

func CheckDNSCoexist(existing []*DNSRecord, r *DNSRecord) error {
	return record.CheckDNSCoexist(existing, r)
}

func DNSNameApp(name string) string { return record.DNSNameApp(name) }

func DNSRecordKey(netID uint32, name, typ, value string) string {
	return record.DNSRecordKey(netID, name, typ, value)
}

func DNSTypes() []string { return record.DNSTypes() }

func DecodeRecord(b []byte) (*Record, int, error) { return record.DecodeRecord(b) }

func InZone(name string) bool { return record.InZone(name) }

func Kinds() []Kind { return record.Kinds() }

func LimitsKey(org string) string { return record.LimitsKey(org) }

func LimitsRecord(org *Record, nw *Network, l OrgLimits, version Stamp) *Record {
	return record.LimitsRecord(org, nw, l, version)
}

func Live(status string) bool { return record.Live(status) }

func NetworkKey(org, name string) string { return record.NetworkKey(org, name) }

func NormalizeDNSName(s string) (string, error) { return record.NormalizeDNSName(s) }

func NormalizeDNSRecord(name, typ, value string, ttl int) (DNSRecord, error) {
	return record.NormalizeDNSRecord(name, typ, value, ttl)
}

func ParseCheck(s string) (Check, error) { return record.ParseCheck(s) }

func ParseSRV(v string) (prio, weight, port uint16, target string) { return record.ParseSRV(v) }

func PeerKey(org, name string) string { return record.PeerKey(org, name) }
