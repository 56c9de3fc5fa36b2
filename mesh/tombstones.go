package mesh

import (
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/store"
)

// DefaultTombstoneTTL is how long a delete is remembered (--tombstone-ttl).
const DefaultTombstoneTTL = 72 * time.Hour

// awayLimit is how long a host may be out of touch before it no longer trusts what
// other hosts wrote in its catalog. It is below the TTL: anything deleted after the
// host lost touch is collected elsewhere no earlier than TTL after that, so a host
// that forgets at 7/8 of the TTL (checked every TTL/16) never holds an object whose
// tombstone is already gone when it reconnects.
func (n *Node) awayLimit() time.Duration { return n.cfg.TombstoneTTL / 8 * 7 }

func (n *Node) gcInterval() time.Duration {
	d := n.cfg.TombstoneTTL / 16
	switch {
	case d < 100*time.Millisecond:
		return 100 * time.Millisecond
	case d > time.Minute:
		return time.Minute
	}
	return d
}

// forgetIfAway runs at start: a host whose last contact with its cluster is older
// than the away limit may hold objects that were deleted and whose tombstones were
// collected meanwhile. Pushing them would resurrect them, so it forgets everything
// other hosts wrote and catches up from the cluster. It keeps its own host record,
// machines and peers (only it writes those, and a removal or re-image shows in host
// records, which are never collected), and host and network records.
func (n *Node) forgetIfAway(id store.Identity) error {
	at, ok, err := n.store.AliveAt()
	if err != nil || !ok {
		return err
	}
	away := n.now().Sub(at)
	if away <= n.awayLimit() {
		return nil
	}
	return n.forgetOthers(id, away)
}

func (n *Node) forgetOthers(id store.Identity, away time.Duration) error {
	ids := n.cat.Forget(func(r *catalog.Record) bool {
		switch {
		case !catalog.Collectable(r.Kind):
			return true
		case r.Machine != nil:
			return r.Machine.Host == id.Name && r.Machine.HostID == id.HostID
		case r.Peer != nil:
			return r.Peer.Gateway == id.Name && r.Peer.GatewayID == id.HostID
		}
		return false
	})
	n.log.Warn("out of touch with the cluster longer than the tombstone horizon allows: forgot what other hosts wrote, catching up from the cluster",
		"away", away.Round(time.Second), "tombstone_ttl", n.cfg.TombstoneTTL, "forgotten", len(ids))
	return n.store.Delete(ids...)
}

// gcLoop collects tombstones past the horizon, records that the host is in touch with
// its cluster, and forgets other hosts' records if it has been cut off for too long
// (a partition, not a restart).
func (n *Node) gcLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.gcInterval())
	defer t.Stop()
	lastContact := n.now()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		now := n.now()
		if n.inTouch() {
			lastContact = now
			if err := n.store.SaveAliveAt(now); err != nil {
				n.log.Error("record contact time", "err", err)
			}
		} else if away := now.Sub(lastContact); away > n.awayLimit() {
			n.allocMu.Lock()
			id := n.id
			n.allocMu.Unlock()
			if err := n.forgetOthers(id, away); err != nil {
				n.log.Error("forget records", "err", err)
			}
			lastContact = now // once per isolation
		}
		if ids := n.cat.Collect(); len(ids) > 0 {
			if err := n.store.Delete(ids...); err != nil {
				n.log.Error("delete collected tombstones", "err", err)
			}
			n.metrics.collected.Add(float64(len(ids)))
		}
	}
}

// othersAlive reports whether another host is alive in membership.
func (n *Node) othersAlive() bool {
	for _, m := range n.gossip.Members() {
		if m.Name != n.id.Name && catalog.Live(m.Status) {
			return true
		}
	}
	return false
}

// inTouch reports whether this host hears from its cluster: another host is alive,
// or it is the only host the catalog knows.
func (n *Node) inTouch() bool {
	if n.othersAlive() {
		return true
	}
	for name := range n.cat.Latest().Hosts {
		if name != n.id.Name {
			return false
		}
	}
	return true
}
