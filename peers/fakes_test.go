package peers

import (
	"errors"
	"net/netip"
	"slices"
	"sync"

	"github.com/dogwood/dogwood/peers/attach"
	"github.com/dogwood/dogwood/peers/filter"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/dogwood/dogwood/peers/wgsync"
)

// Fakes of the data plane's parts: they record what Apply asked for and fail on
// demand, so the apply logic (stages, per-object errors, what is kept and retried)
// is tested without root. FakeParts returns a set wired together.

// FakeLinks records routes and DNS addresses.
type FakeLinks struct {
	mu        sync.Mutex
	Routes    []netip.Prefix
	DNS       []netip.Addr
	RoutesErr error
}

func (f *FakeLinks) EnableForwarding() error { return nil }
func (f *FakeLinks) SyncRoutes(_ string, want []netip.Prefix) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.RoutesErr != nil {
		return 0, 0, f.RoutesErr
	}
	f.Routes = slices.Clone(want)
	return len(want), 0, nil
}
func (f *FakeLinks) SyncDNS(want []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.DNS = slices.Clone(want)
	return nil
}
func (f *FakeLinks) Close() {}

// FakeNamespaces attaches every wanted machine except those whose namespace is in
// Broken.
type FakeNamespaces struct {
	mu       sync.Mutex
	Attached map[string]plan.Machine // by machine id
	Broken   map[string]error        // netns -> why attaching fails
}

func (f *FakeNamespaces) Sync(want []plan.Machine) (attach.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res attach.Result
	var errs []error
	next := map[string]plan.Machine{}
	for _, m := range want {
		if err := f.Broken[m.Netns]; err != nil {
			errs = append(errs, &attach.MachineError{ID: m.ID, Err: err})
			continue
		}
		if _, ok := f.Attached[m.ID]; !ok {
			res.Attached++
		}
		next[m.ID] = m
	}
	res.Detached = len(f.Attached) + res.Attached - len(next)
	f.Attached = next
	return res, errors.Join(errs...)
}
func (f *FakeNamespaces) DetachAll() error {
	f.mu.Lock()
	f.Attached = nil
	f.mu.Unlock()
	return nil
}
func (f *FakeNamespaces) Close() {}

// FakeFilters records the last isolation spec.
type FakeFilters struct {
	mu   sync.Mutex
	Spec filter.Spec
	Err  error
}

func (f *FakeFilters) Sync(spec filter.Spec) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return false, f.Err
	}
	f.Spec = spec
	return true, nil
}
func (f *FakeFilters) Delete() error { return nil }

// FakePeers records the wanted WireGuard peers.
type FakePeers struct {
	mu    sync.Mutex
	Peers []plan.Peer
	Err   error
}

func (f *FakePeers) Reconcile(want []plan.Peer, _ wgsync.Settings) (wgsync.Changes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return wgsync.Changes{}, f.Err
	}
	ch := wgsync.Changes{Added: len(want) - len(f.Peers)}
	f.Peers = slices.Clone(want)
	return ch, nil
}

// FakeParts returns fakes for every part, and the Parts to pass to NewWithParts.
func FakeParts() (Parts, *FakeLinks, *FakeNamespaces, *FakeFilters, *FakePeers) {
	l, n, fl, p := &FakeLinks{}, &FakeNamespaces{Broken: map[string]error{}}, &FakeFilters{}, &FakePeers{}
	return Parts{Links: l, Namespaces: n, Filters: fl, Peers: p}, l, n, fl, p
}
