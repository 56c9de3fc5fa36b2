package catalog

import "github.com/dogwood/dogwood/mesh/record"

// The record types live in mesh/record, which anything that only carries records
// (gossip) imports without the catalog; these names keep them at home here.

type (
	App            = record.App
	Check          = record.Check
	DNSRecord      = record.DNSRecord
	DNSRecordError = record.DNSRecordError
	Duration       = record.Duration
	Header         = record.Header
	Host           = record.Host
	ID             = record.ID
	Kind           = record.Kind
	Machine        = record.Machine
	MachineAttrs   = record.MachineAttrs
	MachinePlace   = record.MachinePlace
	Network        = record.Network
	Org            = record.Org
	OrgLimits      = record.OrgLimits
	Peer           = record.Peer
	Record         = record.Record
	Service        = record.Service
	Stamp          = record.Stamp
)

const (
	CheckHTTP            = record.CheckHTTP
	CheckTCP             = record.CheckTCP
	DefaultCheckFall     = record.DefaultCheckFall
	DefaultCheckInterval = record.DefaultCheckInterval
	DefaultCheckRise     = record.DefaultCheckRise
	DefaultCheckTimeout  = record.DefaultCheckTimeout
	DefaultDNSTTL        = record.DefaultDNSTTL
	HealthCritical       = record.HealthCritical
	HealthPassing        = record.HealthPassing
	HealthUnknown        = record.HealthUnknown
	KindApp              = record.KindApp
	KindDNSRecord        = record.KindDNSRecord
	KindHost             = record.KindHost
	KindMachine          = record.KindMachine
	KindNetwork          = record.KindNetwork
	KindOrg              = record.KindOrg
	KindPeer             = record.KindPeer
	LimitsApp            = record.LimitsApp
	MaxChecks            = record.MaxChecks
	MetaContainerID      = record.MetaContainerID
	SourceAPI            = record.SourceAPI
	SourceCLI            = record.SourceCLI
	SourceCNI            = record.SourceCNI
	StateStarted         = record.StateStarted
	StateStopped         = record.StateStopped
	StatusAlive          = record.StatusAlive
	StatusFailed         = record.StatusFailed
	StatusLeft           = record.StatusLeft
	StatusSuspect        = record.StatusSuspect
	SubBuckets           = record.SubBuckets
	WhenNoneAll          = record.WhenNoneAll
	WhenNoneNone         = record.WhenNoneNone
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
