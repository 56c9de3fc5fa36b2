package schema

import (
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
)

// DefaultNetwork is the network every org is created with.
const DefaultNetwork = "default"

// OrgInfo is an org with its networks, as `orgs list` prints it.
type OrgInfo struct {
	Slug      string        `json:"slug"`
	CreatedAt time.Time     `json:"created_at"`
	Networks  []NetworkInfo `json:"networks"`
	// Limits are the org's effective per-org quotas and which are its overrides.
	Limits quota.Effective `json:"limits"`
}

// NetworkInfo describes one network.
type NetworkInfo struct {
	Org    string `json:"org"`
	Name   string `json:"name"`
	ID     uint32 `json:"id"`
	Prefix string `json:"prefix"`
}

// InviteSpec asks for an invitation; any agent takes it and forwards it to a
// gateway, which issues the code.
type InviteSpec struct {
	Org       string    `json:"org"`
	Network   string    `json:"network,omitempty"`
	Region    string    `json:"region,omitempty"`
	Name      string    `json:"name"`
	DNS       string    `json:"dns,omitempty"` // full (default), split or none
	ExpiresAt time.Time `json:"expires_at"`
}

// InviteInfo is a pending invitation; Code is set only in the answer to its
// creation (the gateway keeps only a hash of the secret).
type InviteInfo struct {
	Code      string    `json:"code,omitempty"`
	Name      string    `json:"name"`
	Org       string    `json:"org"`
	Network   string    `json:"network"`
	Region    string    `json:"region"`
	Gateway   string    `json:"gateway"`
	DNS       string    `json:"dns"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PeerSpec asks for a user peer. Only the public key ever reaches the agent.
type PeerSpec struct {
	Org       string     `json:"org"`
	Network   string     `json:"network,omitempty"`
	Region    string     `json:"region,omitempty"`
	Name      string     `json:"name"`
	PublicKey string     `json:"public_key"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// RequestID is the client's id for this create: a retry returns the peer the
	// first attempt made.
	RequestID string `json:"request_id,omitempty"`
}

// PeerInfo is a peer plus what a config file needs from its gateway.
type PeerInfo struct {
	Name          string     `json:"name"`
	Org           string     `json:"org"`
	Network       string     `json:"network"`
	Region        string     `json:"region"`
	Gateway       string     `json:"gateway"`
	Address       string     `json:"address"`
	PublicKey     string     `json:"public_key"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
	LastHandshake *time.Time `json:"last_handshake"`

	AddressPrefix    string `json:"address_prefix"` // the /120, as the config's Address
	NetworkPrefix    string `json:"network_prefix"` // the /48, as AllowedIPs
	DNS              string `json:"dns"`
	GatewayPublicKey string `json:"gateway_public_key"`
	GatewayEndpoint  string `json:"gateway_endpoint"`
	Endpoint         string `json:"endpoint,omitempty"` // where the gateway last saw the peer
	RxBytes          int64  `json:"rx_bytes"`
	TxBytes          int64  `json:"tx_bytes"`
}

// MemberInfo is one host as `dogwood members` prints it.
type MemberInfo struct {
	Name      string `json:"name"`
	HostID    uint32 `json:"host_id"`
	HostIDHex string `json:"host_id_hex"`
	Region    string `json:"region"`
	Addr      string `json:"addr"`
	Status    string `json:"status"`
	Gateway   bool   `json:"gateway"`
	PublicKey string `json:"public_key"`
	Endpoint  string `json:"public_endpoint,omitempty"`
	// Version is the member's release as it advertises it ("0.3.0"), or what its
	// gossip tells ("0.2.0 or older"); "" when this host has not heard it.
	Version  string `json:"version"`
	Protocol int    `json:"protocol,omitempty"`
	// VersionProblem says why this host cannot exchange messages with the member.
	VersionProblem string `json:"version_problem,omitempty"`
}

// MachineSpec is a machine to create on this host.
type MachineSpec struct {
	App string `json:"app"`
	// Org picks the app's org; it may be empty when the app name is used in one org.
	Org          string            `json:"org,omitempty"`
	Region       string            `json:"region,omitempty"`
	ProcessGroup string            `json:"process_group,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Services     []catalog.Service `json:"services,omitempty"`
	Netns        string            `json:"netns,omitempty"`
	Stopped      bool              `json:"stopped,omitempty"`
	// Checks are the machine's health checks ("http:8080/healthz" or an object with
	// kind, target, interval, timeout, rise, fall); its host runs them.
	Checks []catalog.Check `json:"checks,omitempty"`
	// RequestID is the client's id for this create: a retry returns the machine the
	// first attempt made (the CLI sets one and retries when the agent connection fails).
	RequestID string `json:"request_id,omitempty"`
	// Source is who asks: catalog.SourceCLI or SourceAPI (empty: api). Container
	// runtimes' machines come with an Attachment instead.
	Source string `json:"source,omitempty"`
	// Attachment makes the machine a container runtime's (CNI) interface. Only the
	// agent's local CNI service sets it; a request body never can.
	Attachment *Attachment `json:"-"`
}

// Attachment is the interface a container runtime asked for through the CNI plugin:
// the machine joins the namespace at Netns (a path the runtime owns and removes) as
// interface Ifname. ContainerID goes into the machine's metadata; Network is the
// runtime's network config name, which CNI's GC is scoped by.
type Attachment struct {
	ContainerID, Ifname, Netns, Network string
}

// DNSRecordSpec is a record to add, as the user typed it.
type DNSRecordSpec struct {
	Org     string `json:"org"`
	Network string `json:"network,omitempty"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	// TTL in seconds; nil is the default (5).
	TTL *int `json:"ttl,omitempty"`
}

// DNSRecordFilter selects records to remove: Name always, Type and Value optionally.
type DNSRecordFilter struct {
	Org     string `json:"org"`
	Network string `json:"network,omitempty"`
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"`
	Value   string `json:"value,omitempty"`
}

// AppSettings are the app settings a create or `apps update` sets.
type AppSettings struct {
	// WhenNoneHealthy is "all" (default) or "none": see catalog.App.
	WhenNoneHealthy string `json:"when_none_healthy,omitempty"`
}

// Check refuses a setting this release does not know.
func (s AppSettings) Check() error {
	switch s.WhenNoneHealthy {
	case "", catalog.WhenNoneAll, catalog.WhenNoneNone:
		return nil
	}
	return invalid("invalid when_none_healthy %q: use all or none", s.WhenNoneHealthy)
}

// Stored is the value the app record keeps: the default is not spelled out, so an
// app that never chose encodes as before.
func (s AppSettings) Stored() string {
	if s.WhenNoneHealthy == catalog.WhenNoneAll {
		return ""
	}
	return s.WhenNoneHealthy
}

// OrgLimitsUpdate is a `orgs set-limits` request: a nil field stays as it is, 0
// removes the org's override (the cluster default applies again).
type OrgLimitsUpdate struct {
	Machines   *int `json:"machines,omitempty"`
	Apps       *int `json:"apps,omitempty"`
	DNSRecords *int `json:"dns_records,omitempty"`
	Peers      *int `json:"peers,omitempty"`
}

// maxOverride bounds an override: past it a typo, not a plan (the record-size and
// memory reasoning behind the defaults in package quota).
const maxOverride = 1_000_000

// Apply returns cur with u's fields set, or a usage error.
func (u OrgLimitsUpdate) Apply(cur catalog.OrgLimits) (catalog.OrgLimits, error) {
	set := 0
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{{"machines", u.Machines, &cur.Machines}, {"apps", u.Apps, &cur.Apps}, {"dns-records", u.DNSRecords, &cur.DNSRecords}, {"peers", u.Peers, &cur.Peers}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 || *f.v > maxOverride {
			return cur, invalid("invalid --%s %d: use 1-%d, or 0 for the cluster default", f.name, *f.v, maxOverride)
		}
		*f.dst = *f.v
		set++
	}
	if set == 0 {
		return cur, invalid("nothing to set: give --machines, --apps, --dns-records or --peers (0 restores the cluster default)")
	}
	return cur, nil
}

// WireGuardStatus is the data plane's state as `dogwood status` shows it.
type WireGuardStatus struct {
	Interface string          `json:"interface"`
	Mode      string          `json:"mode"`
	Port      int             `json:"port"`
	Peers     []WireGuardPeer `json:"peers"`
}

// WireGuardPeer is one peer of the host's interface.
type WireGuardPeer struct {
	PublicKey     string     `json:"public_key"`
	Host          string     `json:"host,omitempty"` // the host or user peer it belongs to
	Endpoint      string     `json:"endpoint"`
	AllowedIPs    []string   `json:"allowed_ips"`
	LastHandshake *time.Time `json:"last_handshake"`
	HandshakeAge  *float64   `json:"handshake_age_seconds"`
	RxBytes       int64      `json:"rx_bytes"`
	TxBytes       int64      `json:"tx_bytes"`
	// Reachable is this host's verdict on a host peer's tunnel (false: its machines
	// are out of this host's DNS answers); absent for user peers.
	Reachable *bool `json:"reachable,omitempty"`
}

// Status is this host's identity, catalog counts and WireGuard peers.
type Status struct {
	Name      string           `json:"name"`
	HostID    uint32           `json:"host_id"`
	HostIDHex string           `json:"host_id_hex"`
	Region    string           `json:"region"`
	PublicKey string           `json:"public_key"`
	Gateway   bool             `json:"gateway"`
	Version   string           `json:"version"`
	Catalog   map[string]int   `json:"catalog"`
	Members   map[string]int   `json:"members"`
	WireGuard *WireGuardStatus `json:"wireguard"`
	// APIFingerprint pins the TLS API's certificate (--agent-fingerprint).
	APIFingerprint string `json:"api_fingerprint,omitempty"`
}

// DigRequest asks the agent's DNS resolver for a network's view.
type DigRequest struct {
	Org     string `json:"org"`
	Network string `json:"network,omitempty"`
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"`
}

// DigResponse carries the DNS answer in wire format, so the CLI prints exactly what
// a resolver would have received.
type DigResponse struct {
	Msg string `json:"msg"` // base64 of the DNS message
}
