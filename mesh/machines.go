package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/schema"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Machines creates, lists, starts, stops and destroys machines. A machine's record
// is written only by the host it runs on: operations on another host's machine are
// sent there (Caller), so two hosts never write one machine.
type Machines struct {
	host, region string // this host's, fixed while it runs
	r            Reader
	w            Writer
	alloc        Allocator
	inst         Installer
	call         Caller
	limits       quota.Limits
	now          func() time.Time
	// randField draws a machine field to try (sixpn.RandomMachineField).
	randField func() uint32

	// mu serializes the read-modify-write of this host's machine records (start,
	// stop, destroy, health), so two of them on one machine never write over each
	// other. Creates do not need it: they write a new record under alloc.
	mu sync.Mutex
}

// Create allocates a machine field and address on this host and records the
// machine. Allocation is serialized on the host, so concurrent creates never collide.
func (ms *Machines) Create(ctx context.Context, spec MachineSpec) (*catalog.Machine, error) {
	if err := schema.CheckMachineSpec(&spec); err != nil {
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
	if m, err := ms.byRequest(ctx, spec.RequestID); m != nil || err != nil {
		return m, err
	}
	if spec.Region != "" && spec.Region != ms.region {
		return nil, invalid("this host is in region %q; run the command on a host in region %q", ms.region, spec.Region)
	}
	ar, err := findApp(ms.r, spec.Org, spec.App)
	if err != nil {
		return nil, err
	}
	app := ar.App
	lim := ms.limits.WithDefaults()
	if len(spec.Services) > lim.ServicesPerMachine {
		return nil, overLimit(&quota.Exceeded{Limit: "services", Subject: "the machine", Count: len(spec.Services), Max: lim.ServicesPerMachine})
	}
	if len(spec.Metadata) > lim.MetadataPerMachine {
		return nil, overLimit(&quota.Exceeded{Limit: "metadata entries", Subject: "the machine", Count: len(spec.Metadata), Max: lim.MetadataPerMachine})
	}
	if err := orgLimit(ms.limits, ms.r, quota.Machines, app.Org); err != nil {
		return nil, err
	}
	if spec.ProcessGroup == "" {
		spec.ProcessGroup = "app"
	}
	if spec.Netns != "" {
		for _, m := range ms.r.Snapshot().LocalMachines {
			if m.Netns == spec.Netns && m.Ifname == ifname {
				return nil, conflict("network namespace %q is already used by machine %s", spec.Netns, m.ID)
			}
		}
	}
	m, err := ms.allocate(spec, app)
	ms.w.Flush() // publish outside the allocation lock
	if err != nil || m.RequestID != spec.RequestID || m.Host != ms.host {
		return m, err
	}
	if err := ms.inst.Installed(ctx, catalog.ID{Kind: catalog.KindMachine, Key: m.ID}); err != nil {
		return m, fmt.Errorf("machine %s recorded, but attaching it failed: %w", m.ID, err)
	}
	return m, nil
}

// allocate picks a free machine field and id and records the machine: under the
// allocation lock so concurrent creates never collide, and only disk and memory
// inside it.
func (ms *Machines) allocate(spec MachineSpec, app *catalog.App) (*catalog.Machine, error) {
	var m *catalog.Machine
	err := ms.alloc.Allocate(func(hostID uint32) error {
		if r := ms.r.ByRequest(catalog.KindMachine, spec.RequestID); r != nil && !r.Deleted {
			m = r.Machine // a concurrent retry of this request got here first
			return nil
		}
		var field uint32
		for {
			field = ms.randField()
			if !ms.r.FieldUsed(hostID, field) {
				break
			}
		}
		id := sixpn.NewMachineID()
		for ms.r.Get(catalog.ID{Kind: catalog.KindMachine, Key: id}) != nil {
			id = sixpn.NewMachineID()
		}
		state := catalog.StateStarted
		if spec.Stopped {
			state = catalog.StateStopped
		}
		nm := &catalog.Machine{
			ID:           id,
			MachinePlace: &catalog.MachinePlace{App: app.Name, Org: app.Org, Network: app.Network, NetworkID: app.NetworkID, Host: ms.host, HostID: hostID, Region: ms.region},
			Field:        field,
			Address:      sixpn.MachineAddr(app.NetworkID, hostID, field),
			CreatedAt:    ms.now().UTC(),
			RequestID:    spec.RequestID,
			MachineAttrs: &catalog.MachineAttrs{State: state, ProcessGroup: spec.ProcessGroup, Metadata: spec.Metadata, Services: spec.Services, Source: spec.Source,
				Checks: spec.Checks, Health: catalog.AggregateHealth(spec.Checks)}, Netns: spec.Netns,
		}
		if a := spec.Attachment; a != nil {
			nm.Ifname, nm.CNINetwork = a.Ifname, a.Network
		}
		stamp := ms.r.Tick()
		if err := ms.w.Record(&catalog.Record{Kind: catalog.KindMachine, Key: id, Gen: 1, Created: stamp, Version: stamp, Machine: nm}); err != nil {
			return err
		}
		m = nm
		return nil
	})
	return m, err
}

// List lists machines, sorted by org, app, then id: of one app if app is set (org
// may be empty when the name is used in one org), of one org if only org is set.
func (ms *Machines) List(org, app string) ([]catalog.Machine, error) {
	if app != "" {
		r, err := findApp(ms.r, org, app)
		if err != nil {
			return nil, err
		}
		org = r.App.Org
	} else if org != "" {
		if err := requireOrg(ms.r, org); err != nil {
			return nil, err
		}
	}
	out := []catalog.Machine{}
	for _, r := range ms.r.List(catalog.KindMachine) {
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

// Get returns one machine.
func (ms *Machines) Get(id string) (*catalog.Machine, error) {
	if err := ValidMachineID(id); err != nil {
		return nil, err
	}
	r := ms.r.Live(catalog.ID{Kind: catalog.KindMachine, Key: id})
	if r == nil {
		return nil, notFound("machine %s not found", id)
	}
	return r.Machine, nil
}

type machineOp struct {
	ID     string `json:"id"`
	Action string `json:"action"` // start, stop, destroy
}

// Action starts, stops or destroys a machine. Only the host that runs it writes its
// record, so other hosts forward the request there.
func (ms *Machines) Action(ctx context.Context, id, action string) (*catalog.Machine, error) {
	m, err := ms.Get(id)
	if err != nil {
		return nil, err
	}
	if m.Host == ms.host {
		return ms.act(ctx, machineOp{ID: id, Action: action})
	}
	if !ms.r.Snapshot().HostLive(m.Host) {
		return nil, unavailable("machine %s runs on host %q, which is %s", id, m.Host, ms.r.Status(m.Host))
	}
	var out catalog.Machine
	if err := ms.call.Call(ctx, m.Host, opMachine, machineOp{ID: id, Action: action}, &out); err != nil {
		return nil, err
	}
	// The owner has written the change; make sure our catalog has it before we answer
	// so a following `machines list` here shows it.
	waitRecord(ctx, ms.r, catalog.ID{Kind: catalog.KindMachine, Key: id}, func(r *catalog.Record) bool {
		if action == "destroy" {
			return r.Deleted
		}
		return !r.Deleted && r.Machine.State == out.State
	})
	return &out, nil
}

// act runs an action on a machine of this host.
func (ms *Machines) act(ctx context.Context, op machineOp) (*catalog.Machine, error) {
	ms.mu.Lock()
	r := ms.r.Live(catalog.ID{Kind: catalog.KindMachine, Key: op.ID})
	if r == nil || r.Machine.Host != ms.host {
		ms.mu.Unlock()
		return nil, notFound("machine %s not found on host %q", op.ID, ms.host)
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
			next.Machine, next.Version = &m, ms.r.Tick()
			err = ms.w.Record(&next)
		}
	case "destroy":
		err = ms.w.Record(ms.w.Tombstones(r)...)
	default:
		err = invalid("unknown machine action %q", op.Action)
	}
	ms.mu.Unlock()
	ms.w.Flush()
	if err != nil {
		return nil, err
	}
	if err := ms.inst.Installed(ctx, catalog.ID{Kind: catalog.KindMachine, Key: op.ID}); err != nil {
		return &m, fmt.Errorf("machine %s updated, but the data plane failed: %w", op.ID, err)
	}
	return &m, nil
}

// byRequest returns the machine an earlier attempt of this request created
// (attached now, if the first attempt failed after recording it), or nil.
func (ms *Machines) byRequest(ctx context.Context, rid string) (*catalog.Machine, error) {
	r := ms.r.ByRequest(catalog.KindMachine, rid)
	switch {
	case r == nil:
		return nil, nil
	case r.Deleted:
		return nil, conflict("request %s created machine %s, which was destroyed since", rid, r.Key)
	}
	m := r.Machine
	if m.Host == ms.host {
		if err := ms.inst.Installed(ctx, r.ID()); err != nil {
			return m, fmt.Errorf("machine %s recorded, but attaching it failed: %w", m.ID, err)
		}
	}
	return m, nil
}

// register serves the machine operations other hosts send to the machine's host.
func (ms *Machines) register(h Handlers) {
	h.Handle(opMachine, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var op machineOp
		if err := json.Unmarshal(body, &op); err != nil {
			return nil, invalid("bad machine request: %v", err)
		}
		return ms.act(ctx, op)
	})
}
