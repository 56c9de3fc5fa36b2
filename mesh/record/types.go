package record

import (
	"fmt"
	"net/netip"
	"time"
)

// Kind is the type of a replicated record.
type Kind uint8

const (
	KindHost Kind = iota + 1
	KindOrg
	KindNetwork
	KindApp
	KindMachine
	KindPeer
	KindDNSRecord
)

// Kinds lists every record kind, in dependency order.
func Kinds() []Kind {
	return []Kind{KindHost, KindOrg, KindNetwork, KindApp, KindMachine, KindPeer, KindDNSRecord}
}

func (k Kind) String() string {
	switch k {
	case KindHost:
		return "host"
	case KindOrg:
		return "org"
	case KindNetwork:
		return "network"
	case KindApp:
		return "app"
	case KindMachine:
		return "machine"
	case KindPeer:
		return "peer"
	case KindDNSRecord:
		return "dns_record"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind (gossip input is checked with it).
func (k Kind) Valid() bool { return k >= KindHost && k <= KindDNSRecord }

// Host is a server running `dogwood agent`. Written only by that host.
type Host struct {
	Name   string `json:"name"`
	ID     uint32 `json:"host_id"`
	Region string `json:"region"`
	// Addr is the underlay address other hosts reach this one on (gossip and WireGuard).
	Addr       netip.Addr `json:"addr"`
	GossipPort uint16     `json:"gossip_port"`
	WGPort     uint16     `json:"wg_port"`
	// PublicKey is the host's WireGuard public key, base64; empty with --wireguard off.
	PublicKey string `json:"public_key"`
	Gateway   bool   `json:"gateway"`
	// PublicEndpoint is where user peers reach a gateway ("host:port"); empty if not a gateway.
	PublicEndpoint string `json:"public_endpoint,omitempty"`
}

// Org is a tenant.
type Org struct {
	Slug      string    `json:"slug"`
	CreatedAt time.Time `json:"created_at"`
}

// Network is a private /48 inside an org. Its key is "<org>/<name>".
type Network struct {
	Org  string `json:"org"`
	Name string `json:"name"`
	ID   uint32 `json:"id"`
}

// App is a named group of machines in one network. Names are unique within the org
// (two orgs may both have "web"); the record key is "<org>/<name>".
type App struct {
	Name      string `json:"name"`
	Org       string `json:"org"`
	Network   string `json:"network"`
	NetworkID uint32 `json:"network_id"`
	// RequestID is the client's id for the create, so a retry returns this app.
	RequestID string `json:"request_id,omitempty"`
	// WhenNoneHealthy is what DNS answers when filtering by health and reachability
	// would leave a name of the app with no machine: "" or WhenNoneAll answers them
	// all (fail open), WhenNoneNone answers none.
	WhenNoneHealthy string `json:"when_none_healthy,omitempty"`
	// Limits is set on an org's limits carrier only (orglimits.go), never on an app.
	Limits *OrgLimits `json:"limits,omitempty"`
}

// App.WhenNoneHealthy values.
const (
	WhenNoneAll  = "all"
	WhenNoneNone = "none"
)

// FailOpen reports whether names of the app answer every machine when none passes.
func (a *App) FailOpen() bool { return a.WhenNoneHealthy != WhenNoneNone }

// Machine states.
const (
	StateStarted = "started"
	StateStopped = "stopped"
)

// Service is a port a machine registers for SRV lookups.
type Service struct {
	Name  string `json:"name"`
	Proto string `json:"proto"`
	Port  uint16 `json:"port"`
}

// Machine is one instance of an app on one host. Written only by that host.
//
// What a machine shares with its neighbours lives behind two pointers: its placement
// (app, org, network, host, region: the same for every machine of one app on one host)
// and its attributes (state, process group, metadata, services, netns: mostly the
// same across an app). A catalog points every machine with equal placement or
// attributes at one shared copy, which is most of what keeps a machine record small.
// The JSON is that of the flat struct (encoding/json promotes the fields of embedded
// pointers). Both are shared and immutable: to change a field, copy the struct and
// point a copy of the machine at it (see WithState); never assign through the
// promoted fields of a machine someone else may hold.
type Machine struct {
	ID string `json:"id"`
	*MachinePlace
	Field   uint32     `json:"field"`
	Address netip.Addr `json:"address"`
	*MachineAttrs
	CreatedAt time.Time `json:"created_at"`
	// RequestID is the client's id for the create, so a retry returns this machine.
	RequestID string `json:"request_id,omitempty"`
	// Netns is the network namespace the host attached the machine to, if any. It is
	// the machine's own (no two machines share one), so it is kept here and not in
	// the attributes machines share.
	Netns string `json:"netns,omitempty"`
}

// MachinePlace is where a machine runs: its app and network and its host.
type MachinePlace struct {
	App       string `json:"app"`
	Org       string `json:"org"`
	Network   string `json:"network"`
	NetworkID uint32 `json:"network_id"`
	Host      string `json:"host"`
	HostID    uint32 `json:"host_id"`
	Region    string `json:"region"`
}

// MachineAttrs are a machine's state and the settings it was created with.
type MachineAttrs struct {
	State        string            `json:"state"`
	ProcessGroup string            `json:"process_group"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Services     []Service         `json:"services,omitempty"`
	// Source says what made the machine: SourceCLI, SourceAPI or SourceCNI; empty in
	// records written before it was kept (see attrsExt for how it travels).
	Source string `json:"source,omitempty"`
	// Ifname and CNINetwork are a CNI-made machine's interface in its container and
	// the name of the runtime's network config it was made for (GC is per config).
	Ifname     string `json:"ifname,omitempty"`
	CNINetwork string `json:"cni_network,omitempty"`
	// Health is the machine's health as its host last wrote it (HealthPassing,
	// HealthCritical, HealthUnknown); "" for a machine without checks, which counts
	// as passing. It changes only on transitions, so machines of an app still share
	// their attributes.
	Health string `json:"health,omitempty"`
	// Checks are the machine's health checks with each one's status as of the last
	// transition (the owning host's API shows live results).
	Checks []Check `json:"checks,omitempty"`
}

// Machine sources.
const (
	SourceCLI = "cli"
	SourceAPI = "api"
	SourceCNI = "cni"
)

// MetaContainerID is the metadata key of a CNI-made machine's container id.
const MetaContainerID = "container_id"

// Critical reports whether the machine's checks say it does not work.
func (a *MachineAttrs) Critical() bool { return a != nil && a.Health == HealthCritical }

// WithState returns a copy of m in state s; m and what it shares are untouched.
func (m *Machine) WithState(s string) *Machine {
	out := *m
	a := MachineAttrs{}
	if m.MachineAttrs != nil {
		a = *m.MachineAttrs
	}
	a.State = s
	out.MachineAttrs = &a
	return &out
}

// Started reports whether the machine is in the started state.
func (m *Machine) Started() bool { return m.MachineAttrs != nil && m.State == StateStarted }

// Peer is a user's WireGuard device attached to one gateway. Written only by the gateway.
// Its key is "<org>/<name>".
type Peer struct {
	Name      string `json:"name"`
	Org       string `json:"org"`
	Network   string `json:"network"`
	NetworkID uint32 `json:"network_id"`
	Region    string `json:"region"`
	Gateway   string `json:"gateway"`
	GatewayID uint32 `json:"gateway_id"`
	// Address is the peer's address (…:<slot>02); it owns the /120 around it.
	Address   netip.Addr `json:"address"`
	PublicKey string     `json:"public_key"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	// RequestID is the client's id for the create, so a retry returns this peer.
	RequestID string `json:"request_id,omitempty"`
}

// Member states as `dogwood members` prints them.
const (
	StatusAlive   = "alive"
	StatusSuspect = "suspect"
	StatusFailed  = "failed"
	StatusLeft    = "left"
)

// Live reports whether machines on a host in this status belong in DNS address answers.
func Live(status string) bool { return status == StatusAlive || status == StatusSuspect }
