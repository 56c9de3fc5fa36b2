// Package containers owns the machines container runtimes make through the CNI
// plugin (SPEC §8) on this host: it finds a container's machine by container id and
// interface name, so that ADD is idempotent and DEL, CHECK and GC need no state of
// their own; it makes and destroys those machines through the node, never leaving
// one recorded without its link; and its Reaper destroys those whose namespace died
// without a DEL. It serves this on the agent's unix socket only (the namespace paths
// it takes are the host's). It neither touches links or namespaces (the data plane
// does) nor writes the catalog itself.
package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/containers/wire"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/attach"
	"github.com/dogwood/dogwood/peers/plan"
)

// Machines is what the service needs of the agent's machines (*mesh.Machines).
type Machines interface {
	Create(ctx context.Context, spec mesh.MachineSpec) (*catalog.Machine, error)
	Action(ctx context.Context, id, action string) (*catalog.Machine, error)
}

// Catalog is where the service finds this host's machines (*catalog.Catalog).
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// The API's types (shared with the plugin).
type (
	Key        = wire.Key
	AddRequest = wire.AddRequest
	Attachment = wire.Attachment
)

// Service serves ADD, DEL, CHECK and GC for this host.
type Service struct {
	Machines Machines
	Catalog  Catalog
	// Installed brings the data plane in line and reports this machine's own
	// failure (the agent's data plane install); nil when there is none.
	Installed func(ctx context.Context, id string) error
	Log       *slog.Logger

	mu   sync.Mutex
	busy map[Key]chan struct{}
}

// lock serializes the operations on one attachment (find, then create or destroy),
// without a lock held while the node writes and the data plane attaches.
func (s *Service) lock(ctx context.Context, k Key) (func(), error) {
	for {
		s.mu.Lock()
		if s.busy == nil {
			s.busy = map[Key]chan struct{}{}
		}
		ch, held := s.busy[k]
		if !held {
			ch = make(chan struct{})
			s.busy[k] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.busy, k)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// IsContainer reports whether m is a container runtime's machine.
func IsContainer(m *catalog.Machine) bool {
	return m.MachineAttrs != nil && m.Source == catalog.SourceCNI
}

// Find returns the local machine of an attachment, or nil.
func (s *Service) Find(k Key) *catalog.Machine {
	for _, m := range s.Catalog.Snapshot().LocalMachines {
		if IsContainer(m) && m.Ifname == k.Ifname && m.Metadata[catalog.MetaContainerID] == k.ContainerID {
			return m
		}
	}
	return nil
}

// View is m with what a CNI result needs.
func View(m *catalog.Machine) *Attachment {
	pm := plan.Machine{NetworkID: m.NetworkID, External: true}
	return &Attachment{
		Machine: m,
		Prefix:  netip.PrefixFrom(m.Address, 112),
		Gateway: sixpn.MachineGateway(m.NetworkID, m.HostID, m.Field),
		Routes:  attach.Routes(pm),
		DNS:     []netip.Addr{sixpn.MachineDNS()},
		// The host side of the veth (plan.VethName): the runtime lists it in results.
		HostIface: plan.VethName(m.Field),
	}
}

// Add makes the attachment's machine, or returns the one a previous ADD made. An
// attachment recorded with another namespace is stale (the runtime lost a DEL): it
// is replaced. A machine whose attach fails is destroyed again.
func (s *Service) Add(ctx context.Context, req AddRequest) (*Attachment, error) {
	unlock, err := s.lock(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if m := s.Find(req.Key); m != nil {
		if m.Netns == req.Netns {
			if err := s.installed(ctx, m.ID); err != nil {
				return nil, err
			}
			return View(m), nil
		}
		s.Log.Warn("replacing a container's machine recorded with another namespace", "machine", m.ID, "container", req.ContainerID, "ifname", req.Ifname, "old", m.Netns, "new", req.Netns)
		if err := s.destroy(ctx, m.ID); err != nil {
			return nil, err
		}
	}
	if req.Network != "" {
		if err := s.checkNetwork(req); err != nil {
			return nil, err
		}
	}
	spec := mesh.MachineSpec{App: req.App, Org: req.Org, Region: req.Region, ProcessGroup: req.ProcessGroup,
		Metadata: req.Metadata, Services: req.Services,
		Attachment: &mesh.Attachment{ContainerID: req.ContainerID, Ifname: req.Ifname, Netns: req.Netns, Network: req.CNINetwork}}
	// The checks as machine creates take them: "http:8080/healthz" or an object;
	// the node validates them like any create's.
	for _, raw := range req.Checks {
		var c catalog.Check
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, &mesh.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid check %s in the network config: %v", raw, err)}
		}
		spec.Checks = append(spec.Checks, c)
	}
	m, err := s.Machines.Create(ctx, spec)
	if err != nil {
		if m != nil {
			// Recorded, not attached: take it back so nothing half-made remains.
			if derr := s.destroy(ctx, m.ID); derr != nil {
				err = errors.Join(err, fmt.Errorf("destroying machine %s again: %w", m.ID, derr))
			}
		}
		return nil, err
	}
	return View(m), nil
}

func (s *Service) checkNetwork(req AddRequest) error {
	snap := s.Catalog.Snapshot()
	for _, a := range snap.Apps {
		if a.Name == req.App && (req.Org == "" || a.Org == req.Org) && a.Network != req.Network {
			return &mesh.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("app %q of org %q is in network %q, not %q", a.Name, a.Org, a.Network, req.Network)}
		}
	}
	return nil
}

func (s *Service) installed(ctx context.Context, id string) error {
	if s.Installed == nil {
		return nil
	}
	return s.Installed(ctx, id)
}

// destroy destroys a local machine; one already gone is not an error. It finishes
// even when the caller gives up: a teardown must not stop half way.
func (s *Service) destroy(ctx context.Context, id string) error {
	_, err := s.Machines.Action(context.WithoutCancel(ctx), id, "destroy")
	if mesh.StatusCode(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// Del destroys the attachment's machine; nothing to destroy is success.
func (s *Service) Del(ctx context.Context, k Key) error {
	unlock, err := s.lock(ctx, k)
	if err != nil {
		return err
	}
	defer unlock()
	if m := s.Find(k); m != nil {
		return s.destroy(ctx, m.ID)
	}
	return nil
}

// Check returns the attachment's machine. It does not apply the data plane (which
// would repair what CHECK is there to report; the agent repairs drift on its own
// within its reconcile period).
func (s *Service) Check(_ context.Context, k Key) (*Attachment, error) {
	m := s.Find(k)
	if m == nil {
		return nil, &mesh.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("no machine for container %s interface %s on this host", k.ContainerID, k.Ifname)}
	}
	return View(m), nil
}

// GC destroys this host's machines of one CNI network config whose attachments are
// not in valid, and returns their ids.
func (s *Service) GC(ctx context.Context, cniNetwork string, valid []Key) ([]string, error) {
	keep := make(map[Key]bool, len(valid))
	for _, k := range valid {
		keep[k] = true
	}
	var removed []string
	var errs []error
	for _, m := range s.Catalog.Snapshot().LocalMachines {
		if !IsContainer(m) || m.CNINetwork != cniNetwork {
			continue
		}
		k := Key{ContainerID: m.Metadata[catalog.MetaContainerID], Ifname: m.Ifname}
		if keep[k] {
			continue
		}
		if err := s.Del(ctx, k); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Log.Info("garbage-collected a container's machine", "machine", m.ID, "container", k.ContainerID, "ifname", k.Ifname)
		removed = append(removed, m.ID)
	}
	return removed, errors.Join(errs...)
}
