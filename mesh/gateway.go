package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// gatewayPeers is a gateway's peer service: it reserves peer addresses while a create
// is in flight, installs and removes this gateway's peers, expires them, and reports
// their WireGuard stats. Peer records are written only here, on their gateway.
type gatewayPeers struct {
	n        *Node
	reserved map[int]bool // peer slots handed out but not yet in the catalog; under n.allocMu
}

// create installs a peer on this gateway and returns once the data plane has it.
func (g *gatewayPeers) create(ctx context.Context, spec PeerSpec) (*catalog.Peer, error) {
	n := g.n
	if r := n.cat.ByRequest(catalog.KindPeer, spec.RequestID); r != nil && !r.Deleted && r.Peer.Gateway == n.id.Name {
		return r.Peer, nil // a retry of a create that already happened
	}
	if err := n.checkPeerSpec(&spec); err != nil {
		return nil, err
	}
	if spec.Region != "" && spec.Region != n.cfg.Region {
		return nil, invalid("gateway %q is in region %q, not %q", n.id.Name, n.cfg.Region, spec.Region)
	}
	if !n.cfg.Gateway {
		return nil, invalid("host %q is not a gateway", n.id.Name)
	}
	for _, r := range n.cat.List(catalog.KindPeer) {
		if r.Peer.PublicKey == spec.PublicKey {
			return nil, conflict("public key already used by peer %q in org %q", r.Peer.Name, r.Peer.Org)
		}
	}
	nw, err := n.networkByName(spec.Org, spec.Network)
	if err != nil {
		return nil, err // removed since checkPeerSpec looked
	}
	n.allocMu.Lock()
	if err := n.Err(); err != nil {
		n.allocMu.Unlock()
		return nil, unavailable("%v", err)
	}
	if err := n.checkHostID(); err != nil {
		n.allocMu.Unlock()
		return nil, err
	}
	if r := n.cat.ByRequest(catalog.KindPeer, spec.RequestID); r != nil && !r.Deleted && r.Peer.Gateway == n.id.Name {
		n.allocMu.Unlock()
		return r.Peer, nil // a retry of a create that already happened
	}
	idx := n.cat.FreePeerIndex(n.id.HostID, nw.ID, g.reserved)
	addr, err := sixpn.PeerAddr(nw.ID, n.id.HostID, idx)
	if err != nil {
		n.allocMu.Unlock()
		return nil, unavailable("network %q has no free peer address on gateway %q", spec.Network, n.id.Name)
	}
	g.reserved[idx] = true
	n.allocMu.Unlock()
	n.flush()
	defer func() {
		n.allocMu.Lock()
		delete(g.reserved, idx)
		n.allocMu.Unlock()
	}()
	p := &catalog.Peer{
		Name: spec.Name, Org: spec.Org, Network: spec.Network, NetworkID: nw.ID, Region: n.cfg.Region,
		Gateway: n.id.Name, GatewayID: n.id.HostID, Address: addr, PublicKey: spec.PublicKey,
		CreatedAt: n.now().UTC(), ExpiresAt: spec.ExpiresAt, RequestID: spec.RequestID,
	}
	key := catalog.PeerKey(spec.Org, spec.Name)
	if _, err := n.createNamed(ctx, func() *catalog.Record {
		return &catalog.Record{Kind: catalog.KindPeer, Key: key, Peer: p}
	}, catalog.ID{Kind: catalog.KindPeer, Key: key}, fmt.Sprintf("peer %q in org %q", spec.Name, spec.Org)); err != nil {
		return nil, err
	}
	if err := n.installed(ctx, catalog.ID{Kind: catalog.KindPeer, Key: key}); err != nil {
		// Not installed: take the record back so nothing half-created remains.
		err = fmt.Errorf("installing peer on gateway %q: %w", n.id.Name, err)
		if r := n.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: key}); r != nil {
			if terr := n.tombstone(r); terr != nil {
				n.log.Error("peer not installed and its record not taken back", "org", spec.Org, "peer", spec.Name, "err", terr)
				err = errors.Join(err, fmt.Errorf("taking the peer record back failed too (remove it with `dogwood wireguard remove %s %s`): %w", spec.Org, spec.Name, terr))
			}
		}
		return nil, err
	}
	return p, nil
}

func (g *gatewayPeers) remove(ctx context.Context, ref peerRef) error {
	n := g.n
	r := n.cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(ref.Org, ref.Name)})
	if r == nil {
		return nil // already gone: removal is idempotent
	}
	if r.Peer.Gateway != n.id.Name {
		return invalid("peer %q is on gateway %q", ref.Name, r.Peer.Gateway)
	}
	if err := n.tombstone(r); err != nil {
		return err
	}
	return n.installed(ctx, r.ID())
}

func (g *gatewayPeers) stats(keys []string) []PeerStat {
	n := g.n
	if n.cfg.PeerStats == nil {
		return nil
	}
	all := n.cfg.PeerStats()
	var out []PeerStat
	for _, k := range keys {
		if s, ok := all[k]; ok {
			out = append(out, s)
		}
	}
	return out
}

// expiryLoop removes this gateway's peers when they expire.
func (g *gatewayPeers) expiryLoop() {
	n := g.n
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		now := n.now()
		for _, p := range n.cat.Snapshot().LocalPeers {
			if p.ExpiresAt != nil && !p.ExpiresAt.After(now) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := g.remove(ctx, peerRef{p.Org, p.Name}); err != nil {
					n.log.Error("expire peer", "peer", p.Name, "org", p.Org, "err", err)
				} else {
					n.log.Info("peer expired", "peer", p.Name, "org", p.Org)
					n.metrics.peerExpiries.Inc()
				}
				cancel()
			}
		}
	}
}
