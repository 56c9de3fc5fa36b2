package mesh

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// DefaultNetwork is the network every org is created with.
const DefaultNetwork = "default"

// createNamed writes a new record under a name that must be unique, then runs a
// confirmation round so a concurrent create of the same name on another host is
// resolved before we answer: the merge order picks one winner everywhere and the
// loser's caller gets an error instead of a silent success.
func (n *Node) createNamed(ctx context.Context, build func(gen uint32, created catalog.Stamp) *catalog.Record, id catalog.ID, what string) (*catalog.Record, error) {
	n.createMu.Lock()
	cur := n.cat.Get(id)
	if cur != nil && !cur.Deleted {
		n.createMu.Unlock()
		return nil, conflict("%s already exists", what)
	}
	gen := uint32(1)
	if cur != nil {
		gen = cur.Gen + 1
	}
	stamp := n.cat.Tick()
	r := build(gen, stamp)
	r.Gen, r.Created, r.Version = gen, stamp, stamp
	err := n.commit(r)
	n.createMu.Unlock()
	if err != nil {
		return nil, err
	}
	n.gossip.Confirm(ctx, r)
	if w := n.cat.Get(id); w == nil || !w.SameIdentity(r) {
		return nil, conflict("%s was created concurrently on another host, which won", what)
	}
	return r, nil
}

// tombstone writes deletions for the given live records.
func (n *Node) tombstone(rs ...*catalog.Record) error {
	var out []*catalog.Record
	for _, r := range rs {
		t := *r
		t.Deleted = true
		t.Version = n.cat.Tick()
		out = append(out, &t)
	}
	return n.commit(out...)
}

func (n *Node) networkByName(org, name string) (*catalog.Network, error) {
	r := n.cat.Live(catalog.ID{Kind: catalog.KindNetwork, Key: catalog.NetworkKey(org, name)})
	if r == nil {
		return nil, notFound("network %q not found in org %q", name, org)
	}
	return r.Network, nil
}

func (n *Node) requireOrg(slug string) error {
	if err := ValidOrg(slug); err != nil {
		return err
	}
	if n.cat.Live(catalog.ID{Kind: catalog.KindOrg, Key: slug}) == nil {
		return notFound("org %q not found", slug)
	}
	return nil
}

// OrgInfo is an org with its networks, as `orgs list` prints it.
type OrgInfo struct {
	Slug      string        `json:"slug"`
	CreatedAt time.Time     `json:"created_at"`
	Networks  []NetworkInfo `json:"networks"`
}

// NetworkInfo describes one network.
type NetworkInfo struct {
	Org    string `json:"org"`
	Name   string `json:"name"`
	ID     uint32 `json:"id"`
	Prefix string `json:"prefix"`
}

func networkInfo(nw *catalog.Network) NetworkInfo {
	return NetworkInfo{Org: nw.Org, Name: nw.Name, ID: nw.ID, Prefix: sixpn.NetworkPrefix(nw.ID).String()}
}

// CreateOrg creates an org with its default network.
func (n *Node) CreateOrg(ctx context.Context, slug string) (*OrgInfo, error) {
	if err := ValidOrg(slug); err != nil {
		return nil, err
	}
	now := n.now().UTC()
	if _, err := n.createNamed(ctx, func(uint32, catalog.Stamp) *catalog.Record {
		return &catalog.Record{Kind: catalog.KindOrg, Key: slug, Org: &catalog.Org{Slug: slug, CreatedAt: now}}
	}, catalog.ID{Kind: catalog.KindOrg, Key: slug}, fmt.Sprintf("org %q", slug)); err != nil {
		return nil, err
	}
	nw, err := n.CreateNetwork(ctx, slug, DefaultNetwork)
	if err != nil {
		return nil, fmt.Errorf("org %q created but its default network failed: %w", slug, err)
	}
	return &OrgInfo{Slug: slug, CreatedAt: now, Networks: []NetworkInfo{*nw}}, nil
}

// ListOrgs lists orgs with their networks.
func (n *Node) ListOrgs() []OrgInfo {
	byOrg := map[string][]NetworkInfo{}
	for _, r := range n.cat.List(catalog.KindNetwork) {
		byOrg[r.Network.Org] = append(byOrg[r.Network.Org], networkInfo(r.Network))
	}
	out := []OrgInfo{}
	for _, r := range n.cat.List(catalog.KindOrg) {
		nets := byOrg[r.Key]
		if nets == nil {
			nets = []NetworkInfo{}
		}
		out = append(out, OrgInfo{Slug: r.Key, CreatedAt: r.Org.CreatedAt, Networks: nets})
	}
	return out
}

// RemoveOrg removes an org that has no apps and no peers, with its networks.
func (n *Node) RemoveOrg(ctx context.Context, slug string) error {
	if err := n.requireOrg(slug); err != nil {
		return err
	}
	for _, r := range n.cat.List(catalog.KindApp) {
		if r.App.Org == slug {
			return conflict("org %q still has app %q; remove its apps first", slug, r.Key)
		}
	}
	for _, r := range n.cat.List(catalog.KindPeer) {
		if r.Peer.Org == slug {
			return conflict("org %q still has peer %q; remove its peers first", slug, r.Peer.Name)
		}
	}
	rs := []*catalog.Record{n.cat.Live(catalog.ID{Kind: catalog.KindOrg, Key: slug})}
	for _, r := range n.cat.List(catalog.KindNetwork) {
		if r.Network.Org == slug {
			rs = append(rs, r)
		}
	}
	return n.tombstone(rs...)
}

// CreateNetwork creates a network with a fresh random id, unique in the cluster.
func (n *Node) CreateNetwork(ctx context.Context, org, name string) (*NetworkInfo, error) {
	if err := ValidNetwork(name); err != nil {
		return nil, err
	}
	if err := n.requireOrg(org); err != nil {
		return nil, err
	}
	key := catalog.NetworkKey(org, name)
	r, err := n.createNamed(ctx, func(uint32, catalog.Stamp) *catalog.Record {
		id := sixpn.Random32()
		for len(n.cat.NetworkIDClaims(id)) > 0 {
			id = sixpn.Random32()
		}
		return &catalog.Record{Kind: catalog.KindNetwork, Key: key, Network: &catalog.Network{Org: org, Name: name, ID: id}}
	}, catalog.ID{Kind: catalog.KindNetwork, Key: key}, fmt.Sprintf("network %q in org %q", name, org))
	if err != nil {
		return nil, err
	}
	// The confirmation round told us about every network claiming our id. Of two
	// claims the earlier create keeps the id; if that is not us, take another id
	// now, before anything was allocated in the network.
	for attempt := 0; attempt < 5; attempt++ {
		lost := false
		for _, k := range n.cat.NetworkIDClaims(r.Network.ID) {
			if o := n.cat.Get(catalog.ID{Kind: catalog.KindNetwork, Key: k}); o != nil && k != key && o.Created.Compare(r.Created) < 0 {
				lost = true
			}
		}
		if !lost {
			info := networkInfo(r.Network)
			return &info, nil
		}
		nw := *r.Network
		for len(n.cat.NetworkIDClaims(nw.ID)) > 0 {
			nw.ID = sixpn.Random32()
		}
		next := *r
		next.Network, next.Version = &nw, n.cat.Tick()
		if err := n.commit(&next); err != nil {
			return nil, err
		}
		n.gossip.Confirm(ctx, &next)
		r = &next
	}
	return nil, conflict("could not find a unique network id")
}

// ListNetworks lists networks, of one org if org is set.
func (n *Node) ListNetworks(org string) ([]NetworkInfo, error) {
	if org != "" {
		if err := n.requireOrg(org); err != nil {
			return nil, err
		}
	}
	out := []NetworkInfo{}
	for _, r := range n.cat.List(catalog.KindNetwork) {
		if org == "" || r.Network.Org == org {
			out = append(out, networkInfo(r.Network))
		}
	}
	return out, nil
}

// CreateApp creates an app in a network of an org.
func (n *Node) CreateApp(ctx context.Context, name, org, network string) (*catalog.App, error) {
	if err := ValidApp(name); err != nil {
		return nil, err
	}
	if network == "" {
		network = DefaultNetwork
	}
	if err := ValidNetwork(network); err != nil {
		return nil, err
	}
	if err := n.requireOrg(org); err != nil {
		return nil, err
	}
	nw, err := n.networkByName(org, network)
	if err != nil {
		return nil, err
	}
	r, err := n.createNamed(ctx, func(uint32, catalog.Stamp) *catalog.Record {
		return &catalog.Record{Kind: catalog.KindApp, Key: name, App: &catalog.App{Name: name, Org: org, Network: network, NetworkID: nw.ID}}
	}, catalog.ID{Kind: catalog.KindApp, Key: name}, fmt.Sprintf("app %q", name))
	if err != nil {
		return nil, err
	}
	return r.App, nil
}

// ListApps lists apps, of one org if org is set.
func (n *Node) ListApps(org string) ([]catalog.App, error) {
	if org != "" {
		if err := n.requireOrg(org); err != nil {
			return nil, err
		}
	}
	out := []catalog.App{}
	for _, r := range n.cat.List(catalog.KindApp) {
		if org == "" || r.App.Org == org {
			out = append(out, *r.App)
		}
	}
	return out, nil
}

// RemoveApp removes an app that has no machines left.
func (n *Node) RemoveApp(ctx context.Context, name string) error {
	if err := ValidApp(name); err != nil {
		return err
	}
	r := n.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: name})
	if r == nil {
		return notFound("app %q not found", name)
	}
	if a := n.cat.Snapshot().Apps[name]; a != nil && len(a.Machines) > 0 {
		return conflict("app %q still has %d machines; destroy them first", name, len(a.Machines))
	}
	return n.tombstone(r)
}

// MachineSpec is a machine to create on this host.
type MachineSpec struct {
	App          string            `json:"app"`
	Region       string            `json:"region,omitempty"`
	ProcessGroup string            `json:"process_group,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Services     []catalog.Service `json:"services,omitempty"`
	Netns        string            `json:"netns,omitempty"`
	Stopped      bool              `json:"stopped,omitempty"`
}

// CreateMachine allocates a machine field and address on this host and records the
// machine. Allocation is serialized on the host, so concurrent creates never collide.
func (n *Node) CreateMachine(ctx context.Context, spec MachineSpec) (*catalog.Machine, error) {
	if err := checkMachineSpec(&spec); err != nil {
		return nil, err
	}
	if spec.Region != "" && spec.Region != n.cfg.Region {
		return nil, invalid("this host is in region %q; run the command on a host in region %q", n.cfg.Region, spec.Region)
	}
	ar := n.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: spec.App})
	if ar == nil {
		return nil, notFound("app %q not found", spec.App)
	}
	app := ar.App
	if spec.ProcessGroup == "" {
		spec.ProcessGroup = "app"
	}
	if spec.Netns != "" {
		for _, m := range n.cat.Snapshot().LocalMachines {
			if m.Netns == spec.Netns {
				return nil, conflict("network namespace %q is already used by machine %s", spec.Netns, m.ID)
			}
		}
	}
	n.allocMu.Lock()
	defer n.allocMu.Unlock()
	if err := n.checkHostID(); err != nil {
		return nil, err
	}
	var field uint32
	for {
		field = sixpn.RandomMachineField()
		if !n.cat.FieldUsed(n.id.HostID, field) {
			break
		}
	}
	id := sixpn.NewMachineID()
	for n.cat.Get(catalog.ID{Kind: catalog.KindMachine, Key: id}) != nil {
		id = sixpn.NewMachineID()
	}
	state := catalog.StateStarted
	if spec.Stopped {
		state = catalog.StateStopped
	}
	m := &catalog.Machine{
		ID: id, App: app.Name, Org: app.Org, Network: app.Network, NetworkID: app.NetworkID,
		Host: n.id.Name, HostID: n.id.HostID, Region: n.cfg.Region, Field: field,
		Address: sixpn.MachineAddr(app.NetworkID, n.id.HostID, field), State: state,
		ProcessGroup: spec.ProcessGroup, Metadata: spec.Metadata, Services: spec.Services,
		Netns: spec.Netns, CreatedAt: n.now().UTC(),
	}
	stamp := n.cat.Tick()
	r := &catalog.Record{Kind: catalog.KindMachine, Key: id, Gen: 1, Created: stamp, Version: stamp, Machine: m}
	if err := n.commit(r); err != nil {
		return nil, err
	}
	if err := n.applyPlane(ctx); err != nil {
		return m, fmt.Errorf("machine %s recorded, but attaching it failed: %w", id, err)
	}
	return m, nil
}

// ListMachines lists machines, of one app if app is set, sorted by app then id.
func (n *Node) ListMachines(app string) ([]catalog.Machine, error) {
	if app != "" {
		if err := ValidApp(app); err != nil {
			return nil, err
		}
		if n.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: app}) == nil {
			return nil, notFound("app %q not found", app)
		}
	}
	out := []catalog.Machine{}
	for _, r := range n.cat.List(catalog.KindMachine) {
		if app == "" || r.Machine.App == app {
			out = append(out, *r.Machine)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Machine returns one machine.
func (n *Node) Machine(id string) (*catalog.Machine, error) {
	if err := ValidMachineID(id); err != nil {
		return nil, err
	}
	r := n.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: id})
	if r == nil {
		return nil, notFound("machine %s not found", id)
	}
	return r.Machine, nil
}

// Machine operations forwarded to the owning host.
const (
	opMachine    = "machine"
	opPeerCreate = "peer.create"
	opPeerRemove = "peer.remove"
	opPeerStatus = "peer.status"
)

type machineOp struct {
	ID     string `json:"id"`
	Action string `json:"action"` // start, stop, destroy
}

// MachineAction starts, stops or destroys a machine. Only the host that runs it
// writes its record, so other hosts forward the request there.
func (n *Node) MachineAction(ctx context.Context, id, action string) (*catalog.Machine, error) {
	m, err := n.Machine(id)
	if err != nil {
		return nil, err
	}
	if m.Host == n.id.Name {
		return n.machineAction(ctx, machineOp{ID: id, Action: action})
	}
	if !n.cat.Snapshot().HostLive(m.Host) {
		return nil, unavailable("machine %s runs on host %q, which is %s", id, m.Host, n.cat.Status(m.Host))
	}
	var out catalog.Machine
	if err := n.gossip.Call(ctx, m.Host, opMachine, machineOp{ID: id, Action: action}, &out); err != nil {
		return nil, err
	}
	// The owner has written the change; make sure our catalog has it before we answer
	// so a following `machines list` here shows it.
	n.waitFor(ctx, catalog.ID{Kind: catalog.KindMachine, Key: id}, func(r *catalog.Record) bool {
		if action == "destroy" {
			return r.Deleted
		}
		return !r.Deleted && r.Machine.State == out.State
	})
	return &out, nil
}

func (n *Node) machineAction(ctx context.Context, op machineOp) (*catalog.Machine, error) {
	n.allocMu.Lock()
	r := n.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: op.ID})
	if r == nil || r.Machine.Host != n.id.Name {
		n.allocMu.Unlock()
		return nil, notFound("machine %s not found on host %q", op.ID, n.id.Name)
	}
	var err error
	m := *r.Machine
	switch op.Action {
	case "start", "stop":
		state := catalog.StateStarted
		if op.Action == "stop" {
			state = catalog.StateStopped
		}
		if m.State != state {
			m.State = state
			next := *r
			next.Machine, next.Version = &m, n.cat.Tick()
			err = n.commit(&next)
		}
	case "destroy":
		err = n.tombstone(r)
	default:
		err = invalid("unknown machine action %q", op.Action)
	}
	n.allocMu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := n.applyPlane(ctx); err != nil {
		return &m, fmt.Errorf("machine %s updated, but the data plane failed: %w", op.ID, err)
	}
	return &m, nil
}

// waitFor polls the local catalog until cond holds for id or ctx ends (bounded at 2s).
func (n *Node) waitFor(ctx context.Context, id catalog.ID, cond func(*catalog.Record) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ch, stop := n.cat.Watch()
	defer stop()
	for {
		if r := n.cat.Get(id); r != nil && cond(r) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
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
}

// Members lists every host in the catalog with its membership status.
func (n *Node) Members() []MemberInfo {
	snap := n.cat.Snapshot()
	out := []MemberInfo{}
	for _, h := range snap.Hosts {
		out = append(out, MemberInfo{
			Name: h.Name, HostID: h.ID, HostIDHex: fmt.Sprintf("%08x", h.ID), Region: h.Region,
			Addr: fmt.Sprintf("%s:%d", h.Addr, h.GossipPort), Status: h.Status, Gateway: h.Gateway,
			PublicKey: h.PublicKey, Endpoint: h.PublicEndpoint,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RemoveMember removes a host for good: its record, machines and peers are tombstoned.
// A live host must leave first (stop its agent), so a running host is never cut off
// by accident.
func (n *Node) RemoveMember(ctx context.Context, name string) error {
	if err := ValidHostName(name); err != nil {
		return err
	}
	if name == n.id.Name {
		return invalid("cannot remove this host from itself; run it on another host after stopping this agent")
	}
	hr := n.cat.Live(catalog.ID{Kind: catalog.KindHost, Key: name})
	if hr == nil {
		return notFound("host %q not found", name)
	}
	if st := n.cat.Status(name); catalog.Live(st) {
		return conflict("host %q is %s; stop its agent (it then leaves) before removing it", name, st)
	}
	rs := []*catalog.Record{hr}
	for _, r := range n.cat.List(catalog.KindMachine) {
		if r.Machine.Host == name {
			rs = append(rs, r)
		}
	}
	for _, r := range n.cat.List(catalog.KindPeer) {
		if r.Peer.Gateway == name {
			rs = append(rs, r)
		}
	}
	return n.tombstone(rs...)
}
