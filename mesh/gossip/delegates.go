package gossip

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// delegate implements memberlist.Delegate.
//
// Concurrency contract (memberlist's): NotifyMsg runs on memberlist's packet handler
// goroutine and must not block or keep buf; GetBroadcasts and LocalState may run
// concurrently with everything else.
type delegate Gossip

// nodeMeta is tiny and versioned: memberlist caps metadata at 512 bytes, and every
// real attribute of a host travels as a catalog record instead.
type nodeMeta struct {
	V  int    `json:"v"`
	ID uint32 `json:"id"`
}

func (d *delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(nodeMeta{V: 1, ID: d.cfg.HostID})
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(buf []byte) {
	(*Gossip)(d).receive(append([]byte(nil), buf...))
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState carries only our digest root: push/pull (on join and periodically) then
// starts a real anti-entropy exchange when roots differ, instead of shipping the
// whole catalog.
func (d *delegate) LocalState(join bool) []byte {
	root, _ := d.cat.Digest()
	b, _ := json.Marshal(aeRoot{origin: (*Gossip)(d).origin(), Root: root})
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	var m aeRoot
	if err := json.Unmarshal(buf, &m); err != nil {
		(*Gossip)(d).drop("malformed", err)
		return
	}
	if m.From == "" || m.From == d.cfg.Name {
		return
	}
	(*Gossip)(d).learn(m.From, m.Addr)
	root, _ := d.cat.Digest()
	if root != m.Root {
		g := (*Gossip)(d)
		go g.startAE(m.From)
	}
}

// broadcast is a queued record; a newer record for the same id invalidates it.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.name == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// events implements memberlist.EventDelegate. Suspect has no event in memberlist;
// statusLoop polls for it.
type events Gossip

func (e *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.takeLeaving(n.Name) // back: a stale intent must not mark a later failure as left
	g.cat.SetStatus(n.Name, catalog.StatusAlive)
	g.metrics.events.WithLabelValues("join").Inc()
	if n.Name != g.cfg.Name && g.cfg.Name < n.Name && !g.closed.Load() {
		// A host that (re)appears may have missed changes, or have changes we
		// missed: compare digests right away rather than waiting for the next round.
		// One exchange repairs both sides, so only the lower name starts it.
		go g.startAE(n.Name)
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(e)
	// n.State is not usable here: memberlist never updates the embedded Node's State
	// (nodeState.State shadows it). The leave intent (msgLeaving) tells left apart.
	status := catalog.StatusFailed
	if g.takeLeaving(n.Name) {
		status = catalog.StatusLeft
	}
	g.cat.SetStatus(n.Name, status)
	g.metrics.events.WithLabelValues(status).Inc()
}

func (e *events) NotifyUpdate(n *memberlist.Node) {}

// pings implements memberlist.PingDelegate: every probe carries our network
// coordinate, so round-trip times between hosts come for free with failure detection.
type pings Gossip

func (p *pings) AckPayload() []byte {
	b, _ := json.Marshal(p.coords.GetCoordinate())
	return b
}

func (p *pings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if p.cat.Status(other.Name) == catalog.StatusSuspect {
		p.cat.SetStatus(other.Name, catalog.StatusAlive) // it answered: suspicion over
	}
	if len(payload) == 0 {
		return
	}
	var c coordinate.Coordinate
	if err := json.Unmarshal(payload, &c); err != nil || !c.IsValid() {
		return
	}
	if _, err := p.coords.Update(other.Name, &c, rtt); err != nil {
		return
	}
	p.mu.Lock()
	p.peerCoord[other.Name] = &c
	p.mu.Unlock()
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
