package mesh

import "github.com/dogwood/dogwood/mesh/schema"

// The API's shapes and name rules live in package schema, which the CLI links
// without the node; these names keep the node's code and its callers as they were.

// DefaultNetwork is the network every org is created with.
const DefaultNetwork = schema.DefaultNetwork

type (
	OrgInfo         = schema.OrgInfo
	NetworkInfo     = schema.NetworkInfo
	InviteSpec      = schema.InviteSpec
	InviteInfo      = schema.InviteInfo
	PeerSpec        = schema.PeerSpec
	PeerInfo        = schema.PeerInfo
	MemberInfo      = schema.MemberInfo
	MachineSpec     = schema.MachineSpec
	Attachment      = schema.Attachment
	DNSRecordSpec   = schema.DNSRecordSpec
	DNSRecordFilter = schema.DNSRecordFilter
	AppSettings     = schema.AppSettings
	OrgLimitsUpdate = schema.OrgLimitsUpdate
)

func ValidOrg(s string) error       { return schema.ValidOrg(s) }
func ValidNetwork(s string) error   { return schema.ValidNetwork(s) }
func ValidApp(s string) error       { return schema.ValidApp(s) }
func ValidRegion(s string) error    { return schema.ValidRegion(s) }
func ValidHostName(s string) error  { return schema.ValidHostName(s) }
func ValidRequestID(s string) error { return schema.ValidRequestID(s) }
func ValidPeerName(s string) error  { return schema.ValidPeerName(s) }
func ValidMachineID(s string) error { return schema.ValidMachineID(s) }
