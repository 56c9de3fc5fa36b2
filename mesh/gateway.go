package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// gatewayPeers is a gateway's peer pool: it reserves peer addresses while a create
// is in flight, installs and removes this gateway's peers, expires them, and reports
// their WireGuard stats. Peer records are written only here, on their gateway.
type gatewayPeers struct {
	host, region string // this host's, fixed while it runs
	gateway      bool   // this host serves peers (--gateway)
	r            Reader
	w            Writer
	names        Namer
	alloc        Allocator
	inst         Installer
	// peerStats is the data plane's view of WireGuard peers; nil without one.
	peerStats func() map[string]PeerStat
	now       func() time.Time
	log       *slog.Logger
	metrics   *metrics

	// mu guards reserved: peer slots handed out but not yet in the catalog. Taken
	// inside the allocation lock when a slot is picked, so a slot is never handed
	// out twice; alone when it is given back.
	mu       sync.Mutex
	reserved map[int]bool
}

// create installs a peer on this gateway and returns once the data plane has it.
func (g *gatewayPeers) create(ctx context.Context, spec PeerSpec) (*catalog.Peer, error) {
	if p := g.byRequest(spec.RequestID); p != nil {
		return p, nil // a retry of a create that already happened
	}
	if err := checkPeerSpec(g.r, g.now(), &spec); err != nil {
		return nil, err
	}
	if spec.Region != "" && spec.Region != g.region {
		return nil, invalid("gateway %q is in region %q, not %q", g.host, g.region, spec.Region)
	}
	if !g.gateway {
		return nil, invalid("host %q is not a gateway", g.host)
	}
	for _, r := range g.r.List(catalog.KindPeer) {
		if r.Peer.PublicKey == spec.PublicKey {
			return nil, conflict("public key already used by peer %q in org %q", r.Peer.Name, r.Peer.Org)
		}
	}
	nw, err := networkByName(g.r, spec.Org, spec.Network)
	if err != nil {
		return nil, err // removed since checkPeerSpec looked
	}
	var (
		retried *catalog.Peer
		idx     int
		addr    netip.Addr
		hostID  uint32
	)
	err = g.alloc.Allocate(func(id uint32) error {
		if retried = g.byRequest(spec.RequestID); retried != nil {
			return nil
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		idx = g.r.FreePeerIndex(id, nw.ID, g.reserved)
		a, err := sixpn.PeerAddr(nw.ID, id, idx)
		if err != nil {
			return unavailable("network %q has no free peer address on gateway %q", spec.Network, g.host)
		}
		g.reserved[idx] = true
		addr, hostID = a, id
		return nil
	})
	if err != nil || retried != nil {
		return retried, err
	}
	defer func() {
		g.mu.Lock()
		delete(g.reserved, idx)
		g.mu.Unlock()
	}()
	p := &catalog.Peer{
		Name: spec.Name, Org: spec.Org, Network: spec.Network, NetworkID: nw.ID, Region: g.region,
		Gateway: g.host, GatewayID: hostID, Address: addr, PublicKey: spec.PublicKey,
		CreatedAt: g.now().UTC(), ExpiresAt: spec.ExpiresAt, RequestID: spec.RequestID,
	}
	key := catalog.PeerKey(spec.Org, spec.Name)
	if _, err := g.names.CreateNamed(ctx, func() *catalog.Record {
		return &catalog.Record{Kind: catalog.KindPeer, Key: key, Peer: p}
	}, catalog.ID{Kind: catalog.KindPeer, Key: key}, fmt.Sprintf("peer %q in org %q", spec.Name, spec.Org)); err != nil {
		return nil, err
	}
	if err := g.inst.Installed(ctx, catalog.ID{Kind: catalog.KindPeer, Key: key}); err != nil {
		// Not installed: take the record back so nothing half-created remains.
		err = fmt.Errorf("installing peer on gateway %q: %w", g.host, err)
		if r := g.r.Live(catalog.ID{Kind: catalog.KindPeer, Key: key}); r != nil {
			if terr := tombstone(g.w, r); terr != nil {
				g.log.Error("peer not installed and its record not taken back", "org", spec.Org, "peer", spec.Name, "err", terr)
				err = errors.Join(err, fmt.Errorf("taking the peer record back failed too (remove it with `dogwood wireguard remove %s %s`): %w", spec.Org, spec.Name, terr))
			}
		}
		return nil, err
	}
	return p, nil
}

// byRequest is the live peer of this gateway a create with this request id made.
func (g *gatewayPeers) byRequest(rid string) *catalog.Peer {
	if r := g.r.ByRequest(catalog.KindPeer, rid); r != nil && !r.Deleted && r.Peer.Gateway == g.host {
		return r.Peer
	}
	return nil
}

func (g *gatewayPeers) remove(ctx context.Context, ref peerRef) error {
	r := g.r.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(ref.Org, ref.Name)})
	if r == nil {
		return nil // already gone: removal is idempotent
	}
	if r.Peer.Gateway != g.host {
		return invalid("peer %q is on gateway %q", ref.Name, r.Peer.Gateway)
	}
	if err := tombstone(g.w, r); err != nil {
		return err
	}
	return g.inst.Installed(ctx, r.ID())
}

func (g *gatewayPeers) stats(keys []string) []PeerStat {
	if g.peerStats == nil {
		return nil
	}
	all := g.peerStats()
	var out []PeerStat
	for _, k := range keys {
		if s, ok := all[k]; ok {
			out = append(out, s)
		}
	}
	return out
}

// expire removes this gateway's peers when they expire, every second until stop
// closes.
func (g *gatewayPeers) expire(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := g.now()
		for _, p := range g.r.Snapshot().LocalPeers {
			if p.ExpiresAt != nil && !p.ExpiresAt.After(now) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := g.remove(ctx, peerRef{p.Org, p.Name}); err != nil {
					g.log.Error("expire peer", "peer", p.Name, "org", p.Org, "err", err)
				} else {
					g.log.Info("peer expired", "peer", p.Name, "org", p.Org)
					g.metrics.peerExpiries.Inc()
				}
				cancel()
			}
		}
	}
}
