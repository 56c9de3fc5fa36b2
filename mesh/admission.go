package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/clock"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/mesh/store"
)

// A host is its host id and WireGuard key; its name is a label that a new incarnation
// (the same name started on an empty data dir: a re-image) takes over. These errors
// end an agent whose identity the cluster no longer accepts.
var (
	// ErrRemoved: this host was removed with `members remove`. It never runs half
	// admitted; the operator wipes the data dir to join again as a new host.
	ErrRemoved = errors.New("this host was removed from the cluster")
	// ErrSuperseded: a newer incarnation (a re-image) holds this host's name.
	ErrSuperseded = errors.New("this host's name belongs to a newer incarnation")
)

const opHostLookup = "host.lookup"

// admission owns this host's identity and whether the cluster admits it: the host
// record it publishes, taking its name over after a re-image, settling the name with
// the cluster at start, retiring what an older incarnation left, host-id collisions,
// and the write gate — no write is accepted until a host of the cluster told this
// host what it holds under its name since it started. When the cluster no longer
// accepts the identity (removed, superseded) it ends the node through Fatal.
//
// It writes only through the replica and talks to other hosts only through the
// transport (the name lookup). Concurrency: id changes only under alloc (the lock
// allocation holds while it uses the host id); the gate and Fatal are safe anywhere;
// nothing here runs inside a gossip callback.
type admission struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	ids   identityStore
	cat   *catalog.Catalog
	w     identityWriter
	net   transport // set once the transport runs
	key   wgtypes.Key
	addr  netip.Addr // advertised
	// alloc serializes what is allocated under the host id (machine fields, gateway
	// peer slots) with changes of the id (Allocate).
	alloc sync.Mutex
	id    store.Identity // under alloc
	// confirmed: since it started, a host of the cluster told this host what it holds
	// under its name (or this is the first host); until then no writes.
	confirmed atomic.Bool
	opened    chan struct{} // closed once confirmed

	fatal     chan struct{}
	fatalOnce sync.Once
	fatalErr  error

	stop chan struct{}
	wg   sync.WaitGroup
}

// identityStore is where the identity lives (*store.Store).
type identityStore interface {
	SaveIdentity(store.Identity) error
}

// identityWriter is what admission writes through (the replica): its own record and
// the retirement of an older incarnation's records, before the gate opens.
type identityWriter interface {
	RecordAny(rs ...*catalog.Record) error
	Flush()
	Tombstones(rs ...*catalog.Record) []*catalog.Record
	Merge(rs []*catalog.Record) []*catalog.Record
}

// transport is what admission asks of the cluster (gossipTransport).
type transport interface {
	Members() []gossip.Member
	// CallError is why host cannot answer a call (it runs a release this one
	// cannot exchange messages with), or nil.
	CallError(host string) error
	Call(ctx context.Context, host, op string, req, resp any) error
	LocalAddr() (net.IP, uint16)
}

// gossipTransport is *gossip.Gossip as admission's transport.
type gossipTransport struct{ *gossip.Gossip }

func (g gossipTransport) CallError(host string) error { return g.Versions().CallError(host) }

func newAdmission(cfg Config, c clock.Clock, ids identityStore, cat *catalog.Catalog, id store.Identity, key wgtypes.Key, addr netip.Addr) *admission {
	return &admission{cfg: cfg, log: cfg.Logger, clock: c, ids: ids, cat: cat, id: id, key: key, addr: addr,
		opened: make(chan struct{}), fatal: make(chan struct{}), stop: make(chan struct{})}
}

// open confirms the host: writes are admitted from now on. It reports whether this
// call opened the gate.
func (a *admission) open() bool {
	if a.confirmed.Swap(true) {
		return false
	}
	close(a.opened)
	return true
}

// Writable refuses writes until the host has heard from its cluster since it
// started.
func (a *admission) Writable() error {
	if !a.confirmed.Load() {
		return unavailable("host %q has not reached its cluster since it started, so it cannot confirm it still belongs to it; retry once it has (check `dogwood members` and the underlay)", a.id.Name)
	}
	return nil
}

// Allocate runs f with the host's id, which cannot change while f runs (it implements
// Allocator). A host-id collision is resolved first; once the cluster no longer
// accepts this host it refuses.
func (a *admission) Allocate(f func(hostID uint32) error) error {
	a.alloc.Lock()
	err := a.Err()
	if err != nil {
		err = unavailable("%v", err)
	} else if err = a.checkHostID(); err == nil {
		err = f(a.id.HostID)
	}
	a.alloc.Unlock()
	a.w.Flush() // a host record checkHostID wrote
	return err
}

// Self is this host's name and current host id.
func (a *admission) Self() (string, uint32) {
	a.alloc.Lock()
	defer a.alloc.Unlock()
	return a.id.Name, a.id.HostID
}

// start settles the identity with the cluster and publishes the host record; then
// the identity loop keeps both current.
func (a *admission) start() error {
	if err := a.syncIdentity(a.cfg.IdentityTimeout); err != nil {
		return identityAdvice(err, a.cfg.DataDir)
	}
	a.alloc.Lock()
	err := a.writeHostRecord()
	a.alloc.Unlock()
	a.w.Flush()
	if err != nil {
		return identityAdvice(err, a.cfg.DataDir)
	}
	a.wg.Add(1)
	go a.identityLoop()
	return nil
}

// close stops the identity loop.
func (a *admission) close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.wg.Wait()
}

// hostRecord builds what this host's record says now.
func (a *admission) hostRecord() *catalog.Host {
	h := &catalog.Host{
		Name: a.id.Name, ID: a.id.HostID, Region: a.cfg.Region, Addr: a.addr,
		WGPort: a.cfg.WGPort, Gateway: a.cfg.Gateway, PublicEndpoint: a.cfg.PublicEndpoint,
	}
	if _, port := a.net.LocalAddr(); port != 0 {
		h.GossipPort = port
	}
	if a.cfg.WireGuard {
		h.PublicKey = a.key.PublicKey().String()
	}
	return h
}

// mine reports whether r is a record of this incarnation.
func (a *admission) mine(r *catalog.Record) bool {
	return r.Gen == a.id.Gen && r.Created == a.id.Created
}

// writeHostRecord (re)publishes this host's record when anything in it changed, and
// settles who holds the name when another incarnation's record is in the catalog:
// an unsettled (fresh) host takes the name over with the next generation; a settled
// one that finds itself beaten was removed or superseded and must stop. Callers hold
// allocMu.
func (a *admission) writeHostRecord() error {
	h := a.hostRecord()
	cur := a.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: a.id.Name})
	if cur != nil && a.mine(cur) {
		if cur.Deleted {
			return fmt.Errorf("%w (host %q, id %08x, `dogwood members remove`)", ErrRemoved, a.id.Name, a.id.HostID)
		}
		if cur.Host != nil && *cur.Host == *h {
			return nil
		}
	}
	if cur != nil && !a.mine(cur) {
		ours := &catalog.Record{Kind: catalog.KindHost, Key: h.Name, Gen: a.id.Gen, Created: a.id.Created, Version: a.id.Created}
		if cur.Wins(ours) {
			if a.id.Settled {
				other := "a removed incarnation"
				if !cur.Deleted && cur.Host != nil {
					other = fmt.Sprintf("host id %08x", cur.Host.ID)
				}
				return fmt.Errorf("%w (%s holds %q; this data dir has id %08x)", ErrSuperseded, other, a.id.Name, a.id.HostID)
			}
			// A re-image: this host replaces the old incarnation everywhere, which
			// needs a record that beats it under the merge order.
			prev := "removed"
			if !cur.Deleted && cur.Host != nil {
				prev = fmt.Sprintf("%08x", cur.Host.ID)
			}
			a.id.Gen = cur.Gen + 1
			a.id.Created = a.cat.Tick()
			a.id.Settled = true
			if err := a.ids.SaveIdentity(a.id); err != nil {
				return err
			}
			a.log.Warn("host name taken over from an older incarnation (re-image)",
				"name", a.id.Name, "old_host_id", prev, "host_id", fmt.Sprintf("%08x", a.id.HostID), "gen", a.id.Gen)
		}
	}
	r := &catalog.Record{Kind: catalog.KindHost, Key: h.Name, Gen: a.id.Gen, Created: a.id.Created, Version: a.cat.Tick(), Host: h}
	return a.w.RecordAny(r) // published by the caller's flush, after allocMu
}

// settle marks the identity as checked against the cluster.
func (a *admission) settle() error {
	if a.id.Settled {
		return nil
	}
	a.id.Settled = true
	return a.ids.SaveIdentity(a.id)
}

// syncIdentity asks live hosts what they hold under this host's name before the host
// writes anything, so a re-imaged host takes over its name at once and a removed or
// superseded one refuses to start instead of running half admitted. With nobody to
// ask (first host, or nobody reachable in time) it returns and the identity loop
// settles the name when records arrive.
func (a *admission) syncIdentity(timeout time.Duration) error {
	if len(a.cfg.Join) == 0 && !a.knowsOthers() {
		a.open() // the first host of a cluster: nobody to ask
		return a.settle()
	}
	deadline := a.clock.Now().Add(timeout)
	for a.clock.Now().Before(deadline) {
		answered, err := a.lookupName()
		if err != nil {
			return err
		}
		if !answered && a.hearsOnlyOtherVersions() {
			return nil
		}
		if answered {
			if err := a.writeHostRecord(); err != nil {
				return err
			}
			a.open()
			return a.settle()
		}
		if !clock.Sleep(a.clock, 50*time.Millisecond, a.stop) {
			return nil
		}
	}
	a.log.Info("no host answered the identity check in time; settling when one does", "timeout", timeout)
	return nil
}

// knowsOthers reports whether the catalog holds another live host: then there is a
// cluster to ask, whether or not --join names it (the gossip layer reconnects to the
// hosts the catalog knows).
func (a *admission) knowsOthers() bool {
	for _, r := range a.cat.List(catalog.KindHost) {
		if r.Key != a.id.Name {
			return true
		}
	}
	return false
}

// lookupName asks live hosts (up to three) what they hold under this host's name and
// applies the answer; it reports whether one answered.
func (a *admission) lookupName() (bool, error) {
	asked := 0
	for _, m := range a.net.Members() {
		if m.Name == a.id.Name || !catalog.Live(m.Status) || asked == 3 || a.net.CallError(m.Name) != nil {
			continue
		}
		asked++
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var r *catalog.Record
		err := a.net.Call(ctx, m.Name, opHostLookup, a.id.Name, &r)
		cancel()
		if err != nil {
			a.log.Debug("identity lookup", "host", m.Name, "err", err)
			continue
		}
		if r != nil {
			if err := r.Validate(); err != nil || r.Kind != catalog.KindHost || r.Key != a.id.Name {
				continue
			}
			a.w.Merge([]*catalog.Record{r})
		}
		return true, nil
	}
	return false, nil
}

// hearsOnlyOtherVersions lets a host that is not confirmed accept writes when the
// name check got no answer and a live member it hears runs a release it cannot
// exchange messages with (a rolling upgrade from a release before the replay seal):
// such members cannot answer the check, and waiting for one that can would refuse
// every write until the fleet is upgraded. A member that can answer does so before
// this runs (lookupName asks those first). Membership itself (memberlist, under the
// gossip key) still proves the host is in its cluster; the name check runs again
// when a member it can talk to answers. It reports whether it confirmed the host.
func (a *admission) hearsOnlyOtherVersions() bool {
	var others []string
	for _, m := range a.net.Members() {
		if m.Name != a.id.Name && catalog.Live(m.Status) && a.net.CallError(m.Name) != nil {
			others = append(others, m.Name)
		}
	}
	if len(others) == 0 || !a.open() {
		return false
	}
	a.log.Warn("accepting writes: members this host hears run a release it cannot exchange messages with, and none it can talk to answered its name check; what it writes reaches them once they are upgraded",
		"members", strings.Join(others, ","))
	return true
}

// handleHostLookup answers syncIdentity: our record for a name, tombstones included.
func (a *admission) handleHostLookup(_ context.Context, _ string, body json.RawMessage) (any, error) {
	var name string
	if err := json.Unmarshal(body, &name); err != nil {
		return nil, invalid("bad host lookup: %v", err)
	}
	return a.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: name}), nil
}

// identityLoop keeps this host's claim on its name current as records arrive, and
// retires what an older incarnation under the same name left: its machines and peers
// lived on the wiped disk, so this host, their owner by name now, tombstones them.
func (a *admission) identityLoop() {
	defer a.wg.Done()
	ch, stop := a.cat.Watch()
	defer stop()
	var seen uint64
	for {
		// Until the host has heard from its cluster it keeps asking, changes or not.
		var retry clock.Timer
		var retryC <-chan time.Time
		if !a.confirmed.Load() {
			retry = a.clock.NewTimer(time.Second)
			retryC = retry.C()
		}
		select {
		case <-a.stop:
		case <-ch:
		case <-retryC:
		}
		if retry != nil {
			retry.Stop()
		}
		select {
		case <-a.stop:
			return
		default:
		}
		snap := a.cat.Latest()
		if snap.Seq == seen && a.confirmed.Load() {
			continue
		}
		seen = snap.Seq
		if err := a.checkIdentity(snap); err != nil {
			a.fail(err)
			return
		}
		// Bounded cost under heavy churn: at most a few checks a second.
		if !clock.Sleep(a.clock, 100*time.Millisecond, a.stop) {
			return
		}
	}
}

func (a *admission) checkIdentity(snap *catalog.Snapshot) error {
	// A host that started cut off settles once a host answers what it holds under
	// the name: its claim then stood (or was just taken over) against the cluster's.
	answered := false
	if !a.confirmed.Load() && a.othersAlive() {
		var err error
		if answered, err = a.lookupName(); err != nil {
			return err
		}
	}
	if !answered && !a.confirmed.Load() {
		a.hearsOnlyOtherVersions()
	}
	a.alloc.Lock()
	err := a.writeHostRecord()
	if err == nil && answered {
		err = a.settle()
		a.open()
	}
	var stale []*catalog.Record
	if err == nil {
		stale = a.staleLocal(snap, func(hostID uint32) bool { return hostID != a.id.HostID })
	}
	a.alloc.Unlock()
	a.w.Flush()
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		a.log.Warn("retiring machines and peers of an older incarnation of this host", "records", len(stale))
		err := a.w.RecordAny(a.w.Tombstones(stale...)...)
		a.w.Flush()
		return err
	}
	return nil
}

// staleLocal returns the live machine and peer records under this host's name whose
// host id matches drop.
func (a *admission) staleLocal(snap *catalog.Snapshot, drop func(hostID uint32) bool) []*catalog.Record {
	var out []*catalog.Record
	for _, m := range snap.LocalMachines {
		if drop(m.HostID) {
			if r := a.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: m.ID}); r != nil {
				out = append(out, r)
			}
		}
	}
	for _, p := range snap.LocalPeers {
		if drop(p.GatewayID) {
			if r := a.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(p.Org, p.Name)}); r != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// fail ends the node for an identity the cluster no longer accepts. A removed host
// first tombstones what it created after its removal, as their owner, so nothing of
// it stays behind.
func (a *admission) fail(err error) {
	if errors.Is(err, ErrRemoved) {
		if left := a.staleLocal(a.cat.Snapshot(), func(uint32) bool { return true }); len(left) > 0 {
			terr := a.w.RecordAny(a.w.Tombstones(left...)...)
			a.w.Flush()
			if terr != nil {
				a.log.Error("retire records of a removed host", "err", terr)
			}
		}
	}
	a.log.Error("stopping: identity no longer valid", "err", err)
	a.fatalOnce.Do(func() {
		a.fatalErr = err
		close(a.fatal)
	})
}

// Fatal is closed when the node must stop because the cluster no longer accepts its
// identity; Err then says why and what to do.
func (a *admission) Fatal() <-chan struct{} { return a.fatal }

// Err returns why the node stopped (nil while it runs).
func (a *admission) Err() error {
	select {
	case <-a.fatal:
		return identityAdvice(a.fatalErr, a.cfg.DataDir)
	default:
		return nil
	}
}

// identityAdvice turns an identity error into what the operator should do.
func identityAdvice(err error, dataDir string) error {
	switch {
	case errors.Is(err, ErrRemoved):
		return fmt.Errorf("%w. Its data dir %s holds the removed identity: move it away and start the agent again to join as a new host (its old machines are gone)", err, dataDir)
	case errors.Is(err, ErrSuperseded):
		return fmt.Errorf("%w. A host was started under this name on an empty data dir (a re-image) and replaced this one; this data dir %s is stale: move it away, or start with another --name", err, dataDir)
	}
	return err
}

// checkHostID resolves a host-id collision before any allocation uses the id: of two
// hosts claiming one id, the one created first keeps it; the other takes a new id,
// which is only possible while it has allocated nothing.
func (a *admission) checkHostID() error {
	for _, other := range a.cat.HostIDClaims(a.id.HostID) {
		if other == a.id.Name {
			continue
		}
		r := a.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: other})
		if r == nil {
			continue
		}
		if !r.Deleted && r.Created.Compare(a.id.Created) > 0 {
			continue // we were first; the other host moves
		}
		for _, m := range a.cat.Snapshot().LocalMachines {
			if m.HostID == a.id.HostID {
				return conflict("host id %08x collides with host %q and this host already has machines", a.id.HostID, other)
			}
		}
		for len(a.cat.HostIDClaims(a.id.HostID)) > 0 {
			a.id.HostID = sixpn.Random32()
		}
		a.log.Warn("host id collision resolved: took a new id", "other", other, "new_id", fmt.Sprintf("%08x", a.id.HostID))
		if err := a.ids.SaveIdentity(a.id); err != nil {
			return err
		}
		a.cat.SetSelfID(a.id.HostID)
		return a.writeHostRecord()
	}
	return nil
}

// othersAlive reports whether another host is alive in membership.
func (a *admission) othersAlive() bool {
	if a.net == nil {
		return false
	}
	for _, m := range a.net.Members() {
		if m.Name != a.id.Name && catalog.Live(m.Status) {
			return true
		}
	}
	return false
}

// InTouch reports whether this host hears from its cluster: another host is alive,
// or it is the only host the catalog knows.
func (a *admission) InTouch() bool {
	if a.othersAlive() {
		return true
	}
	for name := range a.cat.Latest().Hosts {
		if name != a.id.Name {
			return false
		}
	}
	return true
}
