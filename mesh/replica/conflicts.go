package replica

import (
	"fmt"
	"sync"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// conflictLog reports a conflict the merge order decided: two creates of one name (an
// org, a network, an app, a peer) made where they could not see each other, or a host
// name taken over by a re-image. Every host reaches the same winner; each logs it once
// at WARN with both sides and counts it.
type conflictLog struct {
	r    *Replica
	mu   sync.Mutex
	seen map[string]bool // conflicts already reported, so re-sent losers are not logged again
}

// report runs inside the catalog's apply (gossip callbacks): it must not block.
func (l *conflictLog) report(c catalog.Conflict) {
	key := fmt.Sprintf("%s %d/%d/%d %d/%d/%d", c.Kept.ID(), c.Kept.Gen, c.Kept.Created.Clock, c.Kept.Created.Node,
		c.Lost.Gen, c.Lost.Created.Clock, c.Lost.Created.Node)
	l.mu.Lock()
	if l.seen == nil || len(l.seen) > 4096 {
		l.seen = map[string]bool{}
	}
	seen := l.seen[key]
	l.seen[key] = true
	l.mu.Unlock()
	if seen {
		return
	}
	r := l.r
	if m := r.cfg.Metrics.Conflicts; m != nil {
		m.WithLabelValues(c.Kept.Kind.String()).Inc()
	}
	r.log.Warn("conflict resolved: two creates of one name, the earlier one wins everywhere",
		"kind", c.Kept.Kind.String(), "key", c.Kept.Key, "kept", describe(c.Kept), "lost", describe(c.Lost))
	if c.Kept.App != nil && c.Lost.App != nil {
		select {
		case <-r.stop:
			return
		default:
		}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); l.reportAppMachines(c.Kept.App, c.Lost.App) }()
	}
}

// reportAppMachines says where the losing app's machines went. They carry the app's
// org and name, so in the winner's network they simply are the winner's machines; in
// another network (their addresses are in it) they cannot move, and are reported.
func (l *conflictLog) reportAppMachines(kept, lost *catalog.App) {
	log := l.r.log
	if kept.NetworkID == lost.NetworkID {
		log.Warn("machines of the losing app joined the winning app (same org and network)",
			"app", kept.Name, "org", kept.Org, "network", kept.Network)
		return
	}
	var ids []string
	for _, r := range l.r.cat.List(catalog.KindMachine) {
		m := r.Machine
		if m.Org == lost.Org && m.App == lost.Name && m.NetworkID == lost.NetworkID {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) > 0 {
		log.Warn("machines of the losing app are in another network than the winning app: they stay listed "+
			"(machines list --app) but are not in its DNS; destroy them and create them again",
			"app", kept.Name, "org", kept.Org, "network", lost.Network, "winner_network", kept.Network, "machines", ids)
	}
}

// describe summarizes one side of a conflict for the log.
func describe(r *catalog.Record) string {
	s := fmt.Sprintf("gen %d created %d@%08x", r.Gen, r.Created.Clock, r.Created.Node)
	switch {
	case r.Host != nil:
		s += fmt.Sprintf(" host id %08x addr %s", r.Host.ID, r.Host.Addr)
	case r.App != nil:
		s += fmt.Sprintf(" network %s/%s", r.App.Org, r.App.Network)
	case r.Network != nil:
		s += fmt.Sprintf(" id %08x", r.Network.ID)
	case r.Peer != nil:
		s += fmt.Sprintf(" gateway %s key %s", r.Peer.Gateway, r.Peer.PublicKey)
	}
	return s
}
