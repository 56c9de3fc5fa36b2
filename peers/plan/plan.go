// Package plan owns the desired state of a host's WireGuard data plane: given an
// immutable catalog snapshot it computes which WireGuard peers the host must have,
// which routes point into the tunnel, which machines are attached through veths,
// which DNS addresses must exist locally and which networks the isolation filter
// admits. It is pure (no I/O, no clock) so every rule is a table test; the
// reconciler and the link/filter drivers turn a Desired into changes.
package plan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Kind says why a WireGuard peer exists.
type Kind uint8

const (
	// KindHost is another Dogwood host: a full mesh link.
	KindHost Kind = iota + 1
	// KindUser is a user's device (laptop, CI job) whose gateway is this host.
	KindUser
)

func (k Kind) String() string {
	switch k {
	case KindHost:
		return "host"
	case KindUser:
		return "user"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Peer is one WireGuard peer the device must hold.
type Peer struct {
	PublicKey wgtypes.Key
	Kind      Kind
	// Name is the host name, or "<org>/<name>" for a user peer (for logs only).
	Name string
	// Endpoint is where the peer listens. It is zero for user peers: they roam and
	// WireGuard learns their endpoint from their authenticated handshakes.
	Endpoint netip.AddrPort
	// AllowedIPs is sorted and canonical (masked). WireGuard's cryptokey routing drops
	// anything a peer sends from outside this list, which is how a remote host is held
	// to its own /80s and a user peer to its /120.
	AllowedIPs []netip.Prefix
}

// Machine is a local machine attached through a veth into its network namespace.
type Machine struct {
	ID        string
	Netns     string
	NetworkID uint32
	Prefix    netip.Prefix // the machine's /112
	Addr      netip.Addr   // ::2, inside the namespace
	Gateway   netip.Addr   // ::1, on the host side of the veth
	// HostIface is the host side of the veth: deterministic from the machine field
	// (unique on a host, SPEC §2) so a restarted agent finds and adopts it.
	HostIface string
	// Ifname is the machine side's name inside the namespace.
	Ifname string
	// External: Netns is a path to a namespace a container runtime owns (CNI). The
	// host never creates or deletes it, writes no resolv.conf for it (the runtime
	// does, from the CNI result) and routes only 6PN into it, not a default route.
	External bool
}

// MachineIface is the machine side of a --netns machine's veth.
const MachineIface = "6pn0"

// Desired is everything the data plane of one host should look like.
type Desired struct {
	// SelfID is this host's id, 0 if the snapshot has no record for it yet.
	SelfID uint32
	// Peers is sorted by public key.
	Peers []Peer
	// Routes are the prefixes routed into the WireGuard interface, sorted.
	Routes []netip.Prefix
	// Machines is sorted by machine id.
	Machines []Machine
	// DNS lists the addresses the local DNS server must answer on: fdaa::3 first,
	// then fdaa:<net>::3 for every network with local machines or peers.
	DNS []netip.Addr
	// Networks are the ids of networks with local machines or peers, sorted: the
	// isolation filter admits same-network traffic for exactly these.
	Networks []uint32
	// Skipped explains catalog records that could not be planned (bad keys,
	// duplicates); the caller logs them.
	Skipped []string
}

// VethPrefix starts the host-side name of every machine veth.
const VethPrefix = "dwm"

// VethName is the host-side veth name of a machine with the given field (11 chars).
func VethName(field uint32) string { return fmt.Sprintf("%s%08x", VethPrefix, field) }

// Compute plans the data plane of s.Self from snapshot s.
func Compute(s *catalog.Snapshot) Desired {
	var d Desired
	var selfKey string
	if self := s.Hosts[s.Self]; self != nil {
		d.SelfID = self.ID
		selfKey = self.PublicKey
	}

	// Which /80s every host routes: one per network it has machines or peers in.
	// Networks are walked in id order so allowed IPs come out sorted.
	netIDs := make([]uint32, 0, len(s.Networks))
	for id := range s.Networks {
		netIDs = append(netIDs, id)
	}
	slices.Sort(netIDs)
	hostNets := make(map[uint32][]netip.Prefix, len(s.Hosts))
	for _, nid := range netIDs {
		for hid, n := range s.Networks[nid].HostCounts {
			if n <= 0 {
				continue
			}
			if hid == d.SelfID && d.SelfID != 0 {
				d.Networks = append(d.Networks, nid)
				continue
			}
			hostNets[hid] = append(hostNets[hid], sixpn.HostPrefix(nid, hid))
		}
	}

	seenKey := map[wgtypes.Key]string{}
	if k, err := wgtypes.ParseKey(selfKey); err == nil {
		seenKey[k] = s.Self + " (self)"
	}
	addPeer := func(p Peer) bool {
		if prev, dup := seenKey[p.PublicKey]; dup {
			d.Skipped = append(d.Skipped, fmt.Sprintf("%s %s: public key already used by %s", p.Kind, p.Name, prev))
			return false
		}
		seenKey[p.PublicKey] = p.Kind.String() + " " + p.Name
		d.Peers = append(d.Peers, p)
		return true
	}

	// Hosts first, by name, so a key clash resolves the same way on every host.
	names := make([]string, 0, len(s.Hosts))
	for name := range s.Hosts {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h := s.Hosts[name]
		if name == s.Self || h.Status == catalog.StatusLeft {
			// Failed and suspect hosts keep their peer: they may come back any moment
			// and WireGuard costs nothing while they are silent. Left hosts said goodbye.
			continue
		}
		if h.PublicKey == "" {
			continue // --wireguard off on that host
		}
		key, err := wgtypes.ParseKey(h.PublicKey)
		if err != nil {
			d.Skipped = append(d.Skipped, fmt.Sprintf("host %s: bad public key: %v", name, err))
			continue
		}
		p := Peer{PublicKey: key, Kind: KindHost, Name: name, AllowedIPs: hostNets[h.ID]}
		if h.Addr.IsValid() && h.WGPort != 0 {
			p.Endpoint = netip.AddrPortFrom(h.Addr.Unmap(), h.WGPort)
		}
		if addPeer(p) {
			d.Routes = append(d.Routes, p.AllowedIPs...)
		}
	}

	seenPrefix := map[netip.Prefix]string{}
	for _, up := range s.LocalPeers {
		name := up.Org + "/" + up.Name
		key, err := wgtypes.ParseKey(up.PublicKey)
		if err != nil {
			d.Skipped = append(d.Skipped, fmt.Sprintf("user %s: bad public key: %v", name, err))
			continue
		}
		if pp, ok := sixpn.Parse(up.Address); !ok || (d.SelfID != 0 && pp.Host != d.SelfID) {
			d.Skipped = append(d.Skipped, fmt.Sprintf("user %s: address %s is not in this host's 6PN space", name, up.Address))
			continue
		}
		pfx := sixpn.PeerPrefix(up.Address)
		if prev, dup := seenPrefix[pfx]; dup {
			d.Skipped = append(d.Skipped, fmt.Sprintf("user %s: %s already used by %s", name, pfx, prev))
			continue
		}
		if addPeer(Peer{PublicKey: key, Kind: KindUser, Name: name, AllowedIPs: []netip.Prefix{pfx}}) {
			seenPrefix[pfx] = name
			d.Routes = append(d.Routes, pfx)
		}
	}
	slices.SortFunc(d.Peers, func(a, b Peer) int { return strings.Compare(string(a.PublicKey[:]), string(b.PublicKey[:])) })
	slices.SortFunc(d.Routes, ComparePrefix)

	seenNetns := map[string]string{}
	for _, m := range s.LocalMachines {
		if m.Netns == "" {
			continue
		}
		external := strings.HasPrefix(m.Netns, "/")
		ifname := MachineIface
		if external {
			ifname = m.Ifname
			if ifname == "" || len(m.Netns) > 255 || strings.Contains(m.Netns, "\x00") {
				d.Skipped = append(d.Skipped, fmt.Sprintf("machine %s: netns path %q with interface %q", m.ID, m.Netns, m.Ifname))
				continue
			}
		} else if err := ValidNetnsName(m.Netns); err != nil {
			d.Skipped = append(d.Skipped, fmt.Sprintf("machine %s: %v", m.ID, err))
			continue
		}
		nsKey := m.Netns + "\x00" + ifname
		if prev, dup := seenNetns[nsKey]; dup {
			d.Skipped = append(d.Skipped, fmt.Sprintf("machine %s: netns %q already holds machine %s", m.ID, m.Netns, prev))
			continue
		}
		if m.Field < sixpn.MinMachineField {
			d.Skipped = append(d.Skipped, fmt.Sprintf("machine %s: reserved field %#x", m.ID, m.Field))
			continue
		}
		seenNetns[nsKey] = m.ID
		d.Machines = append(d.Machines, Machine{
			Ifname:    ifname,
			External:  external,
			ID:        m.ID,
			Netns:     m.Netns,
			NetworkID: m.NetworkID,
			Prefix:    sixpn.MachinePrefix(m.NetworkID, m.HostID, m.Field),
			Addr:      sixpn.MachineAddr(m.NetworkID, m.HostID, m.Field),
			Gateway:   sixpn.MachineGateway(m.NetworkID, m.HostID, m.Field),
			HostIface: VethName(m.Field),
		})
	}

	d.DNS = append(d.DNS, sixpn.MachineDNS())
	for _, nid := range d.Networks {
		d.DNS = append(d.DNS, sixpn.NetworkDNS(nid))
	}
	return d
}

// ValidNetnsName rejects names that are not a single path element under
// /var/run/netns and /etc/netns.
func ValidNetnsName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 200 || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid netns name %q", name)
	}
	return nil
}

// ComparePrefix orders prefixes by address, then length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
