package catalog

import (
	"slices"
	"sort"
	"strings"
)

// Snapshot is an immutable view of the catalog at one moment, plus the membership
// status of every host. Consumers (DNS, the WireGuard reconciler, the API) read the
// latest one after a "changed" signal; they never see a half-applied change and never
// block writers. Nothing reachable from a Snapshot may be modified: unchanged parts are
// shared between consecutive snapshots.
type Snapshot struct {
	// Seq increases with every change; equal Seq means equal content.
	Seq uint64
	// Self is the name of the host that holds this catalog.
	Self string

	Hosts     map[string]*HostView // live host records by name
	HostsByID map[uint32]*HostView
	Orgs      map[string]*Org
	// Networks by id and by "<org>/<name>".
	Networks      map[uint32]*NetworkView
	NetworkByName map[string]*NetworkView
	// Apps by key "<org>/<name>" (names are unique within an org).
	Apps map[string]*AppView

	// LocalMachines are the machines on Self (started or stopped), sorted by id.
	LocalMachines []*Machine
	// LocalPeers are the peers whose gateway is Self, sorted by org then name.
	LocalPeers []*Peer
}

// HostView is a host record plus what membership says about it right now.
type HostView struct {
	Host
	Status string // StatusAlive, StatusSuspect, StatusFailed, StatusLeft
}

// Live reports whether the host's machines belong in address answers.
func (h *HostView) Live() bool { return Live(h.Status) }

// NetworkView is one network with everything in it.
type NetworkView struct {
	Network
	Apps map[string]*AppView // by app name
	// AppNames is sorted.
	AppNames []string
	Peers    map[string]*Peer // by peer name
	// PeerNames is sorted.
	PeerNames []string
	// HostCounts counts machines and peers per host id: the hosts that route a /80 of
	// this network. WireGuard allowed IPs derive from it.
	HostCounts map[uint32]int
	// Records are the network's custom DNS records (nil when none); the pointer is
	// shared between snapshots while they do not change.
	Records *RecordSet
}

// AppView is one app and its machines.
type AppView struct {
	App
	// Machines holds every machine of the app (any state, any host), sorted by id.
	Machines []*Machine
}

// Machine returns the app's machine with this id, or nil (a binary search: the
// sorted slice is the only per-machine index a snapshot keeps).
func (a *AppView) Machine(id string) *Machine {
	i, ok := slices.BinarySearchFunc(a.Machines, id, func(m *Machine, id string) int { return strings.Compare(m.ID, id) })
	if !ok {
		return nil
	}
	return a.Machines[i]
}

// Machine returns a machine of the snapshot by id (nil if unknown). app is the app's
// key ("<org>/<name>") or, for callers that know it is unambiguous, its bare name.
func (s *Snapshot) Machine(app, id string) *Machine {
	if a := s.Apps[app]; a != nil {
		return a.Machine(id)
	}
	for _, a := range s.Apps {
		if a.Name == app {
			if m := a.Machine(id); m != nil {
				return m
			}
		}
	}
	return nil
}

// HostLive reports whether the named host is alive or suspect.
func (s *Snapshot) HostLive(name string) bool {
	h := s.Hosts[name]
	return h != nil && h.Live()
}

// Empty returns a snapshot with no records.
func Empty(self string) *Snapshot {
	return &Snapshot{
		Self:          self,
		Hosts:         map[string]*HostView{},
		HostsByID:     map[uint32]*HostView{},
		Orgs:          map[string]*Org{},
		Networks:      map[uint32]*NetworkView{},
		NetworkByName: map[string]*NetworkView{},
		Apps:          map[string]*AppView{},
	}
}

// Build makes a snapshot from plain lists of live objects. The catalog builds its
// snapshots incrementally; Build is the reference construction that tests and
// benchmarks of consumers use to make catalogs of any shape.
func Build(self string, hosts []HostView, orgs []Org, networks []Network, apps []App, machines []Machine, peers []Peer) *Snapshot {
	s := Empty(self)
	for i := range hosts {
		h := &hosts[i]
		s.Hosts[h.Name] = h
		s.HostsByID[h.ID] = h
	}
	for i := range orgs {
		s.Orgs[orgs[i].Slug] = &orgs[i]
	}
	for i := range networks {
		n := &NetworkView{Network: networks[i], Apps: map[string]*AppView{}, Peers: map[string]*Peer{}, HostCounts: map[uint32]int{}}
		s.Networks[n.ID] = n
		s.NetworkByName[NetworkKey(n.Org, n.Name)] = n
	}
	for i := range apps {
		a := &AppView{App: apps[i]}
		s.Apps[AppKey(a.Org, a.Name)] = a
		if n := s.Networks[a.NetworkID]; n != nil {
			n.Apps[a.Name] = a
		}
	}
	for i := range machines {
		m := &machines[i]
		if n := s.Networks[m.NetworkID]; n != nil {
			// A machine belongs to the app of its name in its own network (app names
			// are unique within an org, so at most one).
			if a := n.Apps[m.App]; a != nil {
				a.Machines = append(a.Machines, m)
			}
			n.HostCounts[m.HostID]++
		}
		if m.Host == self {
			s.LocalMachines = append(s.LocalMachines, m)
		}
	}
	for i := range peers {
		p := &peers[i]
		if n := s.Networks[p.NetworkID]; n != nil {
			n.Peers[p.Name] = p
			n.HostCounts[p.GatewayID]++
		}
		if p.Gateway == self {
			s.LocalPeers = append(s.LocalPeers, p)
		}
	}
	for _, n := range s.Networks {
		n.finish()
	}
	for _, a := range s.Apps {
		sortMachines(a.Machines)
	}
	sortMachines(s.LocalMachines)
	sortPeers(s.LocalPeers)
	return s
}

func (n *NetworkView) finish() {
	n.AppNames = n.AppNames[:0]
	for name := range n.Apps {
		n.AppNames = append(n.AppNames, name)
	}
	sort.Strings(n.AppNames)
	n.PeerNames = n.PeerNames[:0]
	for name := range n.Peers {
		n.PeerNames = append(n.PeerNames, name)
	}
	sort.Strings(n.PeerNames)
}

func sortMachines(ms []*Machine) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
}

func sortPeers(ps []*Peer) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Org != ps[j].Org {
			return ps[i].Org < ps[j].Org
		}
		return ps[i].Name < ps[j].Name
	})
}
