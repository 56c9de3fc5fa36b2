package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Peers creates, lists, inspects and removes user peers. A peer's record is written
// only on its gateway (gatewayPeers there): any host takes the request and sends it
// to the nearest live gateway (Caller).
type Peers struct {
	host    string // this host's name, fixed while it runs
	r       Reader
	w       Writer
	call    Caller
	rtt     func(host string) (time.Duration, bool)
	limits  quota.Limits
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	gw      *gatewayPeers // this host's own peers, when it is a gateway
}

// PeerStat is what the data plane knows about one WireGuard peer.
type PeerStat struct {
	PublicKey     string    `json:"public_key"`
	Endpoint      string    `json:"endpoint"`
	LastHandshake time.Time `json:"last_handshake"`
	RxBytes       int64     `json:"rx_bytes"`
	TxBytes       int64     `json:"tx_bytes"`
}

func peerInfo(cat Reader, p *catalog.Peer) PeerInfo {
	info := PeerInfo{
		Name: p.Name, Org: p.Org, Network: p.Network, Region: p.Region, Gateway: p.Gateway,
		Address: p.Address.String(), PublicKey: p.PublicKey, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt,
		AddressPrefix: fmt.Sprintf("%s/120", p.Address), NetworkPrefix: sixpn.NetworkPrefix(p.NetworkID).String(),
		DNS: sixpn.NetworkDNS(p.NetworkID).String(),
	}
	if h := cat.Snapshot().Hosts[p.Gateway]; h != nil {
		info.GatewayPublicKey = h.PublicKey
		info.GatewayEndpoint = h.PublicEndpoint
	}
	return info
}

// gateways returns live gateway hosts, nearest first (this host, then by RTT, then
// name).
func gateways(cat Reader, self string, rtt func(string) (time.Duration, bool), region string) []*catalog.HostView {
	var out []*catalog.HostView
	for _, h := range cat.Snapshot().Hosts {
		if h.Gateway && h.Live() && h.PublicKey != "" && h.PublicEndpoint != "" && (region == "" || h.Region == region) {
			out = append(out, h)
		}
	}
	dist := func(h *catalog.HostView) float64 {
		if h.Name == self {
			return -1
		}
		if d, ok := rtt(h.Name); ok {
			return float64(d)
		}
		return math.MaxFloat64
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := dist(out[i]), dist(out[j])
		if di != dj {
			return di < dj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// checkPeerPlace validates where a new peer (or the peer an invitation
// will create) goes, filling in the default network; peers and invitations
// must agree on these rules or a redeemed invitation could fail.
func checkPeerPlace(cat Reader, name, org string, network *string, region string) error {
	if err := ValidPeerName(name); err != nil {
		return err
	}
	if err := requireOrg(cat, org); err != nil {
		return err
	}
	if *network == "" {
		*network = DefaultNetwork
	}
	if err := ValidNetwork(*network); err != nil {
		return err
	}
	if _, err := networkByName(cat, org, *network); err != nil {
		return err
	}
	if region != "" {
		if err := ValidRegion(region); err != nil {
			return err
		}
	}
	return nil
}

// checkPeerSpec validates a peer create where it is asked and again on its gateway.
func checkPeerSpec(cat Reader, now time.Time, spec *PeerSpec) error {
	if err := checkPeerPlace(cat, spec.Name, spec.Org, &spec.Network, spec.Region); err != nil {
		return err
	}
	if err := ValidRequestID(spec.RequestID); err != nil {
		return err
	}
	k, err := wgtypes.ParseKey(spec.PublicKey)
	if err != nil || k == (wgtypes.Key{}) {
		return invalid("invalid WireGuard public key %q", spec.PublicKey)
	}
	if err := checkPeerKey(cat, k.String()); err != nil {
		return err
	}
	if spec.ExpiresAt != nil && !spec.ExpiresAt.After(now) {
		return invalid("expiry %s is in the past", spec.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// Create registers a user peer on a gateway and returns once the gateway has
// installed it. On any failure nothing is left registered.
func (ps *Peers) Create(ctx context.Context, spec PeerSpec) (*PeerInfo, error) {
	start := ps.now()
	// A retry of a create that happened returns its peer before the checks that
	// peer itself would now fail (its name and key are taken).
	if err := ValidRequestID(spec.RequestID); err != nil {
		return nil, err
	}
	if r := ps.r.ByRequest(catalog.KindPeer, spec.RequestID); r != nil && !r.Deleted {
		info := peerInfo(ps.r, r.Peer)
		return &info, nil
	}
	if err := checkPeerSpec(ps.r, ps.now(), &spec); err != nil {
		return nil, err
	}
	if ps.r.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(spec.Org, spec.Name)}) != nil {
		return nil, conflict("peer %q already exists in org %q", spec.Name, spec.Org)
	}
	if err := orgLimit(ps.limits, ps.r, quota.Peers, spec.Org); err != nil {
		return nil, err
	}
	gws := gateways(ps.r, ps.host, ps.rtt, spec.Region)
	if len(gws) == 0 {
		if spec.Region != "" {
			return nil, notFound("no live gateway in region %q", spec.Region)
		}
		return nil, unavailable("no live gateway in the cluster (start an agent with --gateway --public-endpoint)")
	}
	gw := gws[0]
	var info *PeerInfo
	if gw.Name == ps.host {
		p, err := ps.gw.create(ctx, spec)
		if err != nil {
			return nil, err
		}
		i := peerInfo(ps.r, p)
		info = &i
	} else {
		var p catalog.Peer
		if err := ps.call.Call(ctx, gw.Name, opPeerCreate, spec, &p); err != nil {
			var re *gossip.RemoteError
			if !errors.As(err, &re) {
				// The gateway may have acted before we stopped waiting: undo.
				cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				uerr := ps.call.Call(cctx, gw.Name, opPeerRemove, peerRef{Org: spec.Org, Name: spec.Name}, nil)
				cancel()
				if uerr != nil && !errors.As(uerr, &re) {
					// A remote "not found" means there was nothing to undo; anything else
					// may leave a peer behind, which the operator must hear about.
					ps.log.Warn("peer create failed and its undo could not be confirmed", "org", spec.Org, "peer", spec.Name, "gateway", gw.Name, "err", uerr)
					err = errors.Join(err, fmt.Errorf("undo not confirmed (check `dogwood wireguard list %s`): %w", spec.Org, uerr))
				}
			}
			return nil, fmt.Errorf("gateway %s: %w", gw.Name, err)
		}
		// The gateway has written and pushed the record; make sure ours has it before
		// answering, so `wireguard list/status` here right after create shows it.
		waitRecord(ctx, ps.r, catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(p.Org, p.Name)}, func(r *catalog.Record) bool { return !r.Deleted })
		i := peerInfo(ps.r, &p)
		i.GatewayPublicKey, i.GatewayEndpoint = gw.PublicKey, gw.PublicEndpoint
		info = &i
	}
	ps.metrics.peerCreates.Inc()
	ps.metrics.peerCreateSeconds.Observe(ps.now().Sub(start).Seconds())
	return info, nil
}

type peerRef struct {
	Org  string `json:"org"`
	Name string `json:"name"`
}

// Remove removes a peer on its gateway (which cuts the tunnel at once) and frees
// its address.
func (ps *Peers) Remove(ctx context.Context, org, name string) error {
	r, err := livePeer(ps.r, org, name)
	if err != nil {
		return err
	}
	if r.Peer.Gateway == ps.host {
		return ps.gw.remove(ctx, peerRef{org, name})
	}
	if !ps.r.Snapshot().HostLive(r.Peer.Gateway) {
		// A dead gateway cannot carry traffic; the tombstone reaches it when it returns.
		return tombstone(ps.w, r)
	}
	if err := ps.call.Call(ctx, r.Peer.Gateway, opPeerRemove, peerRef{org, name}, nil); err != nil {
		return err
	}
	waitRecord(ctx, ps.r, r.ID(), func(x *catalog.Record) bool { return x.Deleted })
	ps.metrics.peerRemoves.Inc()
	return nil
}

func livePeer(cat Reader, org, name string) (*catalog.Record, error) {
	if err := ValidOrg(org); err != nil {
		return nil, err
	}
	if err := ValidPeerName(name); err != nil {
		return nil, err
	}
	r := cat.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(org, name)})
	if r == nil {
		return nil, notFound("peer %q not found in org %q", name, org)
	}
	return r, nil
}

// List lists peers (of one org if set) with their gateways' handshake data.
func (ps *Peers) List(ctx context.Context, org string) ([]PeerInfo, error) {
	if org != "" {
		if err := requireOrg(ps.r, org); err != nil {
			return nil, err
		}
	}
	out := []PeerInfo{}
	byGW := map[string][]string{}
	for _, r := range ps.r.List(catalog.KindPeer) {
		if org == "" || r.Peer.Org == org {
			out = append(out, peerInfo(ps.r, r.Peer))
			byGW[r.Peer.Gateway] = append(byGW[r.Peer.Gateway], r.Peer.PublicKey)
		}
	}
	stats := map[string]PeerStat{}
	for gw, keys := range byGW {
		for _, s := range ps.stats(ctx, gw, keys) {
			stats[s.PublicKey] = s
		}
	}
	for i := range out {
		if s, ok := stats[out[i].PublicKey]; ok {
			applyStat(&out[i], s)
		}
	}
	return out, nil
}

func applyStat(p *PeerInfo, s PeerStat) {
	if !s.LastHandshake.IsZero() {
		t := s.LastHandshake.UTC()
		p.LastHandshake = &t
	}
	p.Endpoint, p.RxBytes, p.TxBytes = s.Endpoint, s.RxBytes, s.TxBytes
}

// Status returns one peer with live data from its gateway.
func (ps *Peers) Status(ctx context.Context, org, name string) (*PeerInfo, error) {
	r, err := livePeer(ps.r, org, name)
	if err != nil {
		return nil, err
	}
	info := peerInfo(ps.r, r.Peer)
	for _, s := range ps.stats(ctx, r.Peer.Gateway, []string{r.Peer.PublicKey}) {
		applyStat(&info, s)
	}
	return &info, nil
}

func (ps *Peers) stats(ctx context.Context, gw string, keys []string) []PeerStat {
	if gw == ps.host {
		return ps.gw.stats(keys)
	}
	if !ps.r.Snapshot().HostLive(gw) {
		return nil
	}
	var out []PeerStat
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := ps.call.Call(cctx, gw, opPeerStatus, keys, &out); err != nil {
		ps.log.Debug("peer status", "gateway", gw, "err", err)
	}
	return out
}

// register serves the peer operations other hosts send to a peer's gateway.
func (ps *Peers) register(h Handlers) {
	h.Handle(opPeerCreate, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var spec PeerSpec
		if err := json.Unmarshal(body, &spec); err != nil {
			return nil, invalid("bad peer request: %v", err)
		}
		return ps.gw.create(ctx, spec)
	})
	h.Handle(opPeerRemove, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var ref peerRef
		if err := json.Unmarshal(body, &ref); err != nil {
			return nil, invalid("bad peer request: %v", err)
		}
		return nil, ps.gw.remove(ctx, ref)
	})
	h.Handle(opPeerStatus, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var keys []string
		if err := json.Unmarshal(body, &keys); err != nil {
			return nil, invalid("bad peer status request: %v", err)
		}
		return ps.gw.stats(keys), nil
	})
}
