package mesh

import (
	"context"
	"encoding/json"
)

// Operations one host asks another to run: machine changes go to the host that runs
// the machine, peer operations to the peer's gateway (each record has one writer).
const (
	opMachine    = "machine"
	opPeerCreate = "peer.create"
	opPeerRemove = "peer.remove"
	opPeerStatus = "peer.status"
)

// registerRPC installs the operations other hosts call. They are served only once
// the host's identity stands (start registers them last): an operation sent while a
// host is still starting, or to a host that turns out removed, is refused, not run
// half-started. The identity lookup itself is served from the beginning.
func (n *Node) registerRPC() {
	n.gossip.Handle(opMachine, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var op machineOp
		if err := json.Unmarshal(body, &op); err != nil {
			return nil, invalid("bad machine request: %v", err)
		}
		return n.machineAction(ctx, op)
	})
	n.gossip.Handle(opPeerCreate, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var spec PeerSpec
		if err := json.Unmarshal(body, &spec); err != nil {
			return nil, invalid("bad peer request: %v", err)
		}
		return n.gw.create(ctx, spec)
	})
	n.gossip.Handle(opPeerRemove, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var ref peerRef
		if err := json.Unmarshal(body, &ref); err != nil {
			return nil, invalid("bad peer request: %v", err)
		}
		return nil, n.gw.remove(ctx, ref)
	})
	n.gossip.Handle(opPeerStatus, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var keys []string
		if err := json.Unmarshal(body, &keys); err != nil {
			return nil, invalid("bad peer status request: %v", err)
		}
		return n.gw.stats(keys), nil
	})
}
