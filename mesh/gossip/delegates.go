package gossip

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlist's delegate interfaces, one thin type each (as serf does): every callback
// hands its input to the Gossip method that owns the concern and returns.
//
// Concurrency contract (memberlist's): callbacks run on memberlist's goroutines
// (packet handler, stream handlers, the probe loop), may run concurrently with each
// other and must not block; NotifyMsg must not keep buf. Callbacks can arrive before
// memberlist.Create has returned, so methods that need g.ml wait for g.ready.

// delegate implements memberlist.Delegate: user messages, our broadcasts, and the
// push/pull state exchange.
type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte { return (*Gossip)(d).nodeMeta(limit) }

func (d *delegate) NotifyMsg(buf []byte) {
	(*Gossip)(d).receive(append([]byte(nil), buf...))
}

// GetBroadcasts has nothing to add: changes travel on our own broadcast tree
// (dissemination.go), not on memberlist's gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

func (d *delegate) LocalState(join bool) []byte { return (*Gossip)(d).ae.pushPullState() }

func (d *delegate) MergeRemoteState(buf []byte, join bool) { (*Gossip)(d).ae.mergePushPull(buf) }

// events implements memberlist.EventDelegate.
type events Gossip

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Gossip)(e).members.onJoin(n) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Gossip)(e).members.onLeave(n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Gossip)(e).members.onUpdate(n) }

// alives implements memberlist.AliveDelegate: memberlist calls it for every alive
// message about a host (its join, its refutation of a suspicion, push/pull merges).
// It never rejects one.
type alives Gossip

func (a *alives) NotifyAlive(n *memberlist.Node) error {
	(*Gossip)(a).members.onAlive(n.Name)
	return nil
}

// pings implements memberlist.PingDelegate: every probe carries our network
// coordinate, so round-trip times between hosts come with failure detection.
type pings Gossip

func (p *pings) AckPayload() []byte { return (*Gossip)(p).coordPayload() }

func (p *pings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	g := (*Gossip)(p)
	g.members.onAlive(other.Name)
	g.updateCoord(other.Name, rtt, payload)
}
