package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
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

// hostRecord builds what this host's record says now.
func (n *Node) hostRecord() *catalog.Host {
	h := &catalog.Host{
		Name: n.id.Name, ID: n.id.HostID, Region: n.cfg.Region, Addr: n.advAddr,
		WGPort: n.cfg.WGPort, Gateway: n.cfg.Gateway, PublicEndpoint: n.cfg.PublicEndpoint,
	}
	if _, port := n.gossip.LocalAddr(); port != 0 {
		h.GossipPort = port
	}
	if n.cfg.WireGuard {
		h.PublicKey = n.wgKey.PublicKey().String()
	}
	return h
}

// mine reports whether r is a record of this incarnation.
func (n *Node) mine(r *catalog.Record) bool {
	return r.Gen == n.id.Gen && r.Created == n.id.Created
}

// writeHostRecord (re)publishes this host's record when anything in it changed, and
// settles who holds the name when another incarnation's record is in the catalog:
// an unsettled (fresh) host takes the name over with the next generation; a settled
// one that finds itself beaten was removed or superseded and must stop. Callers hold
// allocMu.
func (n *Node) writeHostRecord() error {
	h := n.hostRecord()
	cur := n.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: n.id.Name})
	if cur != nil && n.mine(cur) {
		if cur.Deleted {
			return fmt.Errorf("%w (host %q, id %08x, `dogwood members remove`)", ErrRemoved, n.id.Name, n.id.HostID)
		}
		if cur.Host != nil && *cur.Host == *h {
			return nil
		}
	}
	if cur != nil && !n.mine(cur) {
		ours := &catalog.Record{Kind: catalog.KindHost, Key: h.Name, Gen: n.id.Gen, Created: n.id.Created, Version: n.id.Created}
		if cur.Wins(ours) {
			if n.id.Settled {
				other := "a removed incarnation"
				if !cur.Deleted && cur.Host != nil {
					other = fmt.Sprintf("host id %08x", cur.Host.ID)
				}
				return fmt.Errorf("%w (%s holds %q; this data dir has id %08x)", ErrSuperseded, other, n.id.Name, n.id.HostID)
			}
			// A re-image: this host replaces the old incarnation everywhere, which
			// needs a record that beats it under the merge order.
			prev := "removed"
			if !cur.Deleted && cur.Host != nil {
				prev = fmt.Sprintf("%08x", cur.Host.ID)
			}
			n.id.Gen = cur.Gen + 1
			n.id.Created = n.cat.Tick()
			n.id.Settled = true
			if err := n.store.SaveIdentity(n.id); err != nil {
				return err
			}
			n.log.Warn("host name taken over from an older incarnation (re-image)",
				"name", n.id.Name, "old_host_id", prev, "host_id", fmt.Sprintf("%08x", n.id.HostID), "gen", n.id.Gen)
		}
	}
	r := &catalog.Record{Kind: catalog.KindHost, Key: h.Name, Gen: n.id.Gen, Created: n.id.Created, Version: n.cat.Tick(), Host: h}
	return n.recordAny(r) // published by the caller's flush, after allocMu
}

// settle marks the identity as checked against the cluster.
func (n *Node) settle() error {
	if n.id.Settled {
		return nil
	}
	n.id.Settled = true
	return n.store.SaveIdentity(n.id)
}

// syncIdentity asks live hosts what they hold under this host's name before the host
// writes anything, so a re-imaged host takes over its name at once and a removed or
// superseded one refuses to start instead of running half admitted. With nobody to
// ask (first host, or nobody reachable in time) it returns and the identity loop
// settles the name when records arrive.
func (n *Node) syncIdentity(timeout time.Duration) error {
	if len(n.cfg.Join) == 0 && !n.knowsOthers() {
		n.confirmed.Store(true) // the first host of a cluster: nobody to ask
		return n.settle()
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		answered, err := n.lookupName()
		if err != nil {
			return err
		}
		if !answered && n.hearsOnlyOtherVersions() {
			return nil
		}
		if answered {
			if err := n.writeHostRecord(); err != nil {
				return err
			}
			n.confirmed.Store(true)
			return n.settle()
		}
		select {
		case <-n.stop:
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.log.Info("no host answered the identity check in time; settling when one does", "timeout", timeout)
	return nil
}

// knowsOthers reports whether the catalog holds another live host: then there is a
// cluster to ask, whether or not --join names it (the gossip layer reconnects to the
// hosts the catalog knows).
func (n *Node) knowsOthers() bool {
	for _, r := range n.cat.List(catalog.KindHost) {
		if r.Key != n.id.Name {
			return true
		}
	}
	return false
}

// lookupName asks live hosts (up to three) what they hold under this host's name and
// applies the answer; it reports whether one answered.
func (n *Node) lookupName() (bool, error) {
	asked := 0
	for _, m := range n.gossip.Members() {
		if m.Name == n.id.Name || !catalog.Live(m.Status) || asked == 3 || n.gossip.Versions().CallError(m.Name) != nil {
			continue
		}
		asked++
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var r *catalog.Record
		err := n.gossip.Call(ctx, m.Name, opHostLookup, n.id.Name, &r)
		cancel()
		if err != nil {
			n.log.Debug("identity lookup", "host", m.Name, "err", err)
			continue
		}
		if r != nil {
			if err := r.Validate(); err != nil || r.Kind != catalog.KindHost || r.Key != n.id.Name {
				continue
			}
			if n.cat.Apply(r) {
				if err := n.store.Put(r); err != nil {
					return false, err
				}
			}
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
func (n *Node) hearsOnlyOtherVersions() bool {
	var others []string
	for _, m := range n.gossip.Members() {
		if m.Name != n.id.Name && catalog.Live(m.Status) && n.gossip.Versions().CallError(m.Name) != nil {
			others = append(others, m.Name)
		}
	}
	if len(others) == 0 || n.confirmed.Swap(true) {
		return false
	}
	n.log.Warn("accepting writes: members this host hears run a release it cannot exchange messages with, and none it can talk to answered its name check; what it writes reaches them once they are upgraded",
		"members", strings.Join(others, ","))
	return true
}

// handleHostLookup answers syncIdentity: our record for a name, tombstones included.
func (n *Node) handleHostLookup(_ context.Context, _ string, body json.RawMessage) (any, error) {
	var name string
	if err := json.Unmarshal(body, &name); err != nil {
		return nil, invalid("bad host lookup: %v", err)
	}
	return n.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: name}), nil
}

// identityLoop keeps this host's claim on its name current as records arrive, and
// retires what an older incarnation under the same name left: its machines and peers
// lived on the wiped disk, so this host, their owner by name now, tombstones them.
func (n *Node) identityLoop() {
	defer n.wg.Done()
	ch, stop := n.cat.Watch()
	defer stop()
	var seen uint64
	for {
		// Until the host has heard from its cluster it keeps asking, changes or not.
		var retry <-chan time.Time
		if !n.confirmed.Load() {
			retry = time.After(time.Second)
		}
		select {
		case <-n.stop:
			return
		case <-ch:
		case <-retry:
		}
		snap := n.cat.Latest()
		if snap.Seq == seen && n.confirmed.Load() {
			continue
		}
		seen = snap.Seq
		if err := n.checkIdentity(snap); err != nil {
			n.fail(err)
			return
		}
		// Bounded cost under heavy churn: at most a few checks a second.
		select {
		case <-n.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) checkIdentity(snap *catalog.Snapshot) error {
	// A host that started cut off settles once a host answers what it holds under
	// the name: its claim then stood (or was just taken over) against the cluster's.
	answered := false
	if !n.confirmed.Load() && n.othersAlive() {
		var err error
		if answered, err = n.lookupName(); err != nil {
			return err
		}
	}
	if !answered && !n.confirmed.Load() {
		n.hearsOnlyOtherVersions()
	}
	n.allocMu.Lock()
	err := n.writeHostRecord()
	if err == nil && answered {
		err = n.settle()
		n.confirmed.Store(true)
	}
	var stale []*catalog.Record
	if err == nil {
		stale = n.staleLocal(snap, func(hostID uint32) bool { return hostID != n.id.HostID })
	}
	n.allocMu.Unlock()
	n.flush()
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		n.log.Warn("retiring machines and peers of an older incarnation of this host", "records", len(stale))
		err := n.recordAny(n.tombstones(stale...)...)
		n.flush()
		return err
	}
	return nil
}

// staleLocal returns the live machine and peer records under this host's name whose
// host id matches drop.
func (n *Node) staleLocal(snap *catalog.Snapshot, drop func(hostID uint32) bool) []*catalog.Record {
	var out []*catalog.Record
	for _, m := range snap.LocalMachines {
		if drop(m.HostID) {
			if r := n.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: m.ID}); r != nil {
				out = append(out, r)
			}
		}
	}
	for _, p := range snap.LocalPeers {
		if drop(p.GatewayID) {
			if r := n.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(p.Org, p.Name)}); r != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// fail ends the node for an identity the cluster no longer accepts. A removed host
// first tombstones what it created after its removal, as their owner, so nothing of
// it stays behind.
func (n *Node) fail(err error) {
	if errors.Is(err, ErrRemoved) {
		if left := n.staleLocal(n.cat.Snapshot(), func(uint32) bool { return true }); len(left) > 0 {
			terr := n.recordAny(n.tombstones(left...)...)
			n.flush()
			if terr != nil {
				n.log.Error("retire records of a removed host", "err", terr)
			}
		}
	}
	n.log.Error("stopping: identity no longer valid", "err", err)
	n.fatalOnce.Do(func() {
		n.fatalErr = err
		close(n.fatal)
	})
}

// Fatal is closed when the node must stop because the cluster no longer accepts its
// identity; Err then says why and what to do.
func (n *Node) Fatal() <-chan struct{} { return n.fatal }

// Err returns why the node stopped (nil while it runs).
func (n *Node) Err() error {
	select {
	case <-n.fatal:
		return identityAdvice(n.fatalErr, n.cfg.DataDir)
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
func (n *Node) checkHostID() error {
	for _, other := range n.cat.HostIDClaims(n.id.HostID) {
		if other == n.id.Name {
			continue
		}
		r := n.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: other})
		if r == nil {
			continue
		}
		if !r.Deleted && r.Created.Compare(n.id.Created) > 0 {
			continue // we were first; the other host moves
		}
		for _, m := range n.cat.Snapshot().LocalMachines {
			if m.HostID == n.id.HostID {
				return conflict("host id %08x collides with host %q and this host already has machines", n.id.HostID, other)
			}
		}
		for len(n.cat.HostIDClaims(n.id.HostID)) > 0 {
			n.id.HostID = sixpn.Random32()
		}
		n.log.Warn("host id collision resolved: took a new id", "other", other, "new_id", fmt.Sprintf("%08x", n.id.HostID))
		if err := n.store.SaveIdentity(n.id); err != nil {
			return err
		}
		n.cat.SetSelfID(n.id.HostID)
		return n.writeHostRecord()
	}
	return nil
}
