// Package wire is the agent's attachments API (the CNI plugin's ADD, CHECK, DEL and
// GC on the agent's unix socket) as both sides speak it. It holds plain types and
// depends on nothing but the catalog's, so the plugin that imports it stays small.
package wire

import (
	"encoding/json"
	"net/netip"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Paths of the API (on the unix socket only).
const (
	PathAttachments = "/v1/attachments"    // PUT AddRequest → 200 Attachment
	PathGC          = "/v1/attachments/gc" // POST GCRequest → 200 GCResponse
	// PathAttachments + "/{container}/{ifname}": GET → Attachment (404: none), DELETE → 204.
)

// Key is one attachment as CNI names it.
type Key struct {
	ContainerID string `json:"container_id"`
	Ifname      string `json:"ifname"`
}

// AddRequest is a CNI ADD as the plugin forwards it.
type AddRequest struct {
	Key
	Netns string `json:"netns"`
	// CNINetwork is the runtime's network config name.
	CNINetwork string `json:"cni_network"`
	Org        string `json:"org"`
	App        string `json:"app"`
	// Network, when set, is the Dogwood network the app must be in.
	Network      string            `json:"network,omitempty"`
	Region       string            `json:"region,omitempty"`
	ProcessGroup string            `json:"process_group,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Services     []catalog.Service `json:"services,omitempty"`
	// Checks are passed through in the shape of machine creates' checks.
	Checks []json.RawMessage `json:"checks,omitempty"`
}

// Attachment is a container's machine with what the runtime's result needs.
type Attachment struct {
	Machine   *catalog.Machine `json:"machine"`
	Prefix    netip.Prefix     `json:"prefix"`  // the machine's address with its /112
	Gateway   netip.Addr       `json:"gateway"` // ::1 on the host side
	Routes    []netip.Prefix   `json:"routes"`  // via Gateway
	DNS       []netip.Addr     `json:"dns"`
	HostIface string           `json:"host_iface"`
}

// GCRequest is a CNI GC: this host's machines of CNINetwork not in Valid go.
type GCRequest struct {
	CNINetwork string `json:"cni_network"`
	Valid      []Key  `json:"valid"`
}

// GCResponse lists the machines GC destroyed.
type GCResponse struct {
	Removed []string `json:"removed"`
}
