package mesh

import (
	"context"
	"fmt"
	"github.com/dogwood/dogwood/mesh/quota"
	"sort"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

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

// CreateMachine allocates a machine field and address on this host and records the
// machine. Allocation is serialized on the host, so concurrent creates never collide.
func (n *Node) CreateMachine(ctx context.Context, spec MachineSpec) (*catalog.Machine, error) {
	if err := checkMachineSpec(&spec); err != nil {
		return nil, err
	}
	ifname := ""
	if a := spec.Attachment; a != nil {
		md := make(map[string]string, len(spec.Metadata)+1)
		for k, v := range spec.Metadata {
			md[k] = v
		}
		md[catalog.MetaContainerID] = a.ContainerID
		spec.Metadata, spec.Netns, spec.Source, ifname = md, a.Netns, catalog.SourceCNI, a.Ifname
	} else if spec.Source == "" {
		spec.Source = catalog.SourceAPI
	}
	if err := ValidRequestID(spec.RequestID); err != nil {
		return nil, err
	}
	checks, err := checkChecks(spec.Checks)
	if err != nil {
		return nil, err
	}
	spec.Checks = checks
	if m, err := n.machineByRequest(ctx, spec.RequestID); m != nil || err != nil {
		return m, err
	}
	if spec.Region != "" && spec.Region != n.cfg.Region {
		return nil, invalid("this host is in region %q; run the command on a host in region %q", n.cfg.Region, spec.Region)
	}
	ar, err := n.app(spec.Org, spec.App)
	if err != nil {
		return nil, err
	}
	app := ar.App
	lim := n.cfg.Limits.WithDefaults()
	if len(spec.Services) > lim.ServicesPerMachine {
		return nil, overLimit(&quota.Exceeded{Limit: "services", Subject: "the machine", Count: len(spec.Services), Max: lim.ServicesPerMachine})
	}
	if len(spec.Metadata) > lim.MetadataPerMachine {
		return nil, overLimit(&quota.Exceeded{Limit: "metadata entries", Subject: "the machine", Count: len(spec.Metadata), Max: lim.MetadataPerMachine})
	}
	if err := orgLimit(n.cfg.Limits, n.cat, quota.Machines, app.Org); err != nil {
		return nil, err
	}
	if spec.ProcessGroup == "" {
		spec.ProcessGroup = "app"
	}
	if spec.Netns != "" {
		for _, m := range n.cat.Snapshot().LocalMachines {
			if m.Netns == spec.Netns && m.Ifname == ifname {
				return nil, conflict("network namespace %q is already used by machine %s", spec.Netns, m.ID)
			}
		}
	}
	m, err := n.allocMachine(spec, app)
	n.flush() // publish outside allocMu
	if err != nil || m.RequestID != spec.RequestID || m.Host != n.id.Name {
		return m, err
	}
	if err := n.installed(ctx, catalog.ID{Kind: catalog.KindMachine, Key: m.ID}); err != nil {
		return m, fmt.Errorf("machine %s recorded, but attaching it failed: %w", m.ID, err)
	}
	return m, nil
}

// allocMachine picks a free machine field and id and records the machine: under
// allocMu so concurrent creates never collide, and only disk and memory inside it.
func (n *Node) allocMachine(spec MachineSpec, app *catalog.App) (*catalog.Machine, error) {
	n.allocMu.Lock()
	defer n.allocMu.Unlock()
	if err := n.Err(); err != nil {
		return nil, unavailable("%v", err)
	}
	if err := n.checkHostID(); err != nil {
		return nil, err
	}
	if r := n.cat.ByRequest(catalog.KindMachine, spec.RequestID); r != nil && !r.Deleted {
		return r.Machine, nil // a concurrent retry of this request got here first
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
		ID:           id,
		MachinePlace: &catalog.MachinePlace{App: app.Name, Org: app.Org, Network: app.Network, NetworkID: app.NetworkID, Host: n.id.Name, HostID: n.id.HostID, Region: n.cfg.Region},
		Field:        field,
		Address:      sixpn.MachineAddr(app.NetworkID, n.id.HostID, field),
		CreatedAt:    n.now().UTC(),
		RequestID:    spec.RequestID,
		MachineAttrs: &catalog.MachineAttrs{State: state, ProcessGroup: spec.ProcessGroup, Metadata: spec.Metadata, Services: spec.Services, Source: spec.Source,
			Checks: spec.Checks, Health: catalog.AggregateHealth(spec.Checks)}, Netns: spec.Netns,
	}
	if a := spec.Attachment; a != nil {
		m.Ifname, m.CNINetwork = a.Ifname, a.Network
	}
	stamp := n.cat.Tick()
	r := &catalog.Record{Kind: catalog.KindMachine, Key: id, Gen: 1, Created: stamp, Version: stamp, Machine: m}
	if err := n.record(r); err != nil {
		return nil, err
	}
	return m, nil
}

// ListMachines lists machines, sorted by org, app, then id: of one app if app is set
// (org may be empty when the name is used in one org), of one org if only org is set.
func (n *Node) ListMachines(org, app string) ([]catalog.Machine, error) {
	if app != "" {
		r, err := n.app(org, app)
		if err != nil {
			return nil, err
		}
		org = r.App.Org
	} else if org != "" {
		if err := n.requireOrg(org); err != nil {
			return nil, err
		}
	}
	out := []catalog.Machine{}
	for _, r := range n.cat.List(catalog.KindMachine) {
		m := r.Machine
		if (org == "" || m.Org == org) && (app == "" || m.App == app) {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Org != out[j].Org {
			return out[i].Org < out[j].Org
		}
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
			m = *resetChecks(m.WithState(state)) // the attributes are shared: never assign through them
			next := *r
			next.Machine, next.Version = &m, n.cat.Tick()
			err = n.record(&next)
		}
	case "destroy":
		err = n.record(n.tombstones(r)...)
	default:
		err = invalid("unknown machine action %q", op.Action)
	}
	n.allocMu.Unlock()
	n.flush()
	if err != nil {
		return nil, err
	}
	if err := n.installed(ctx, catalog.ID{Kind: catalog.KindMachine, Key: op.ID}); err != nil {
		return &m, fmt.Errorf("machine %s updated, but the data plane failed: %w", op.ID, err)
	}
	return &m, nil
}

// machineByRequest returns the machine an earlier attempt of this request created
// (attached now, if the first attempt failed after recording it), or nil.
func (n *Node) machineByRequest(ctx context.Context, rid string) (*catalog.Machine, error) {
	r := n.cat.ByRequest(catalog.KindMachine, rid)
	switch {
	case r == nil:
		return nil, nil
	case r.Deleted:
		return nil, conflict("request %s created machine %s, which was destroyed since", rid, r.Key)
	}
	m := r.Machine
	if m.Host == n.id.Name {
		if err := n.installed(ctx, r.ID()); err != nil {
			return m, fmt.Errorf("machine %s recorded, but attaching it failed: %w", m.ID, err)
		}
	}
	return m, nil
}
