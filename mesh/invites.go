package mesh

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/invite"
)

// InviteConfig makes a gateway issue and redeem invitations (SPEC §6). The
// agent sets it when the gateway's invite listener runs.
type InviteConfig struct {
	Book     *invite.Book
	Endpoint string   // host:port of the invite listener, as codes name it
	Pin      [32]byte // of the listener's certificate
}

// Invites issues, lists, revokes and redeems invitations. A gateway that serves
// invitations keeps them in its own book (InviteConfig), never in the catalog: any
// host takes a request and sends it to the gateways (Caller); a redeemed invitation
// becomes a peer of the gateway's pool.
type Invites struct {
	cfg          *InviteConfig // nil: this host issues none
	gateway      bool
	host, region string // this host's, fixed while it runs
	r            Reader
	pool         *gatewayPeers // creates a redeemed invitation's peer
	call         Caller
	rtt          func(host string) (time.Duration, bool)
	now          func() time.Time
	log          *slog.Logger
	metrics      *metrics
}

const (
	opInviteCreate = "invite.create"
	opInviteList   = "invite.list"
	opInviteRemove = "invite.remove"
)

// validDNSMode checks a config DNS mode name.
func validDNSMode(s string) error {
	switch s {
	case "", "full", "split", "none":
		return nil
	}
	return invalid("invalid DNS mode %q: full, split or none", s)
}

func (iv *Invites) checkSpec(spec *InviteSpec) error {
	if err := checkPeerPlace(iv.r, spec.Name, spec.Org, &spec.Network, spec.Region); err != nil {
		return err
	}
	if err := validDNSMode(spec.DNS); err != nil {
		return err
	}
	if spec.DNS == "" {
		spec.DNS = "full"
	}
	if !spec.ExpiresAt.After(iv.now()) {
		return invalid("the invitation's expiry must be in the future")
	}
	if iv.r.Live(catalog.ID{Kind: catalog.KindPeer, Key: catalog.PeerKey(spec.Org, spec.Name)}) != nil {
		return conflict("peer %q already exists in org %q", spec.Name, spec.Org)
	}
	return nil
}

// Create issues a single-use invitation on the nearest gateway (in spec.Region if
// set) that serves invitations, and returns its code.
func (iv *Invites) Create(ctx context.Context, spec InviteSpec) (*InviteInfo, error) {
	if err := iv.checkSpec(&spec); err != nil {
		return nil, err
	}
	gws := gateways(iv.r, iv.host, iv.rtt, spec.Region)
	if len(gws) == 0 {
		if spec.Region != "" {
			return nil, notFound("no live gateway in region %q", spec.Region)
		}
		return nil, unavailable("no live gateway in the cluster (start an agent with --gateway --public-endpoint)")
	}
	var lastErr error
	for _, gw := range gws {
		var info *InviteInfo
		var err error
		if gw.Name == iv.host {
			info, err = iv.createLocal(spec)
		} else {
			var out InviteInfo
			if err = iv.call.Call(ctx, gw.Name, opInviteCreate, spec, &out); err == nil {
				info = &out
			}
		}
		if err == nil {
			return info, nil
		}
		if !errors.Is(err, errNoInvites) && !isRemoteNoInvites(err) {
			return nil, fmt.Errorf("gateway %s: %w", gw.Name, err)
		}
		lastErr = err
	}
	return nil, unavailable("no gateway serves invitations (%v); start gateways with --invite-listen", lastErr)
}

var errNoInvites = &Error{Code: 503, Msg: "this gateway does not serve invitations (--invite-listen off)"}

func isRemoteNoInvites(err error) bool {
	var re *gossip.RemoteError
	return errors.As(err, &re) && re.Message == errNoInvites.Msg
}

func (iv *Invites) createLocal(spec InviteSpec) (*InviteInfo, error) {
	ic := iv.cfg
	if ic == nil || !iv.gateway {
		return nil, errNoInvites
	}
	if err := iv.checkSpec(&spec); err != nil {
		return nil, err
	}
	if spec.Region != "" && spec.Region != iv.region {
		return nil, invalid("gateway %q is in region %q, not %q", iv.host, iv.region, spec.Region)
	}
	var secret [invite.SecretLen]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	now := iv.now().UTC()
	inv := invite.Invite{Hash: invite.Hash(secret), Org: spec.Org, Network: spec.Network, Name: spec.Name,
		DNS: spec.DNS, CreatedAt: now, ExpiresAt: spec.ExpiresAt.UTC()}
	if err := ic.Book.Add(inv); err != nil {
		if errors.Is(err, invite.ErrNameTaken) {
			return nil, conflict("an invitation for peer %q in org %q is already pending (remove it with `dogwood wireguard remove %s %s`)", spec.Name, spec.Org, spec.Org, spec.Name)
		}
		return nil, err
	}
	iv.log.Info("invitation issued", "peer", spec.Name, "org", spec.Org, "expires", inv.ExpiresAt)
	info := iv.info(inv)
	info.Code = invite.Code{Endpoint: ic.Endpoint, Pin: ic.Pin, Secret: secret}.Encode()
	return &info, nil
}

func (iv *Invites) info(inv invite.Invite) InviteInfo {
	return InviteInfo{Name: inv.Name, Org: inv.Org, Network: inv.Network, Region: iv.region, Gateway: iv.host,
		DNS: inv.DNS, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt}
}

func (iv *Invites) local(org string) []InviteInfo {
	if iv.cfg == nil {
		return nil
	}
	var out []InviteInfo
	for _, inv := range iv.cfg.Book.Pending(org) {
		out = append(out, iv.info(inv))
	}
	return out
}

// List lists pending invitations of every live gateway (of one org if set).
func (iv *Invites) List(ctx context.Context, org string) ([]InviteInfo, error) {
	if org != "" {
		if err := requireOrg(iv.r, org); err != nil {
			return nil, err
		}
	}
	out := []InviteInfo{}
	for _, gw := range gateways(iv.r, iv.host, iv.rtt, "") {
		if gw.Name == iv.host {
			out = append(out, iv.local(org)...)
			continue
		}
		var got []InviteInfo
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := iv.call.Call(cctx, gw.Name, opInviteList, org, &got)
		cancel()
		if err != nil {
			iv.log.Debug("list invitations", "gateway", gw.Name, "err", err)
			continue
		}
		out = append(out, got...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Org != out[j].Org {
			return out[i].Org < out[j].Org
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Remove revokes the pending invitation for peer name in org, on whichever
// gateway issued it.
func (iv *Invites) Remove(ctx context.Context, org, name string) error {
	if err := ValidOrg(org); err != nil {
		return err
	}
	if err := ValidPeerName(name); err != nil {
		return err
	}
	removed := false
	for _, gw := range gateways(iv.r, iv.host, iv.rtt, "") {
		var ok bool
		var err error
		if gw.Name == iv.host {
			ok, err = iv.removeLocal(peerRef{org, name})
		} else {
			err = iv.call.Call(ctx, gw.Name, opInviteRemove, peerRef{org, name}, &ok)
		}
		if err != nil {
			return fmt.Errorf("gateway %s: %w", gw.Name, err)
		}
		removed = removed || ok
	}
	if !removed {
		return notFound("no pending invitation for peer %q in org %q", name, org)
	}
	return nil
}

func (iv *Invites) removeLocal(ref peerRef) (bool, error) {
	if iv.cfg == nil {
		return false, nil
	}
	ok, err := iv.cfg.Book.Remove(ref.Org, ref.Name)
	if ok {
		iv.log.Info("invitation revoked", "peer", ref.Name, "org", ref.Org)
	}
	return ok, err
}

// Redeem is the gateway's side of `dogwood wireguard join`: it claims
// the invitation (single use, on disk first) and creates its peer with the
// laptop's public key; if the peer cannot be created the invitation stays
// valid.
func (iv *Invites) Redeem(ctx context.Context, secret [invite.SecretLen]byte, publicKey string) (*invite.Response, error) {
	ic := iv.cfg
	if ic == nil {
		return nil, invite.ErrUnknown
	}
	k, err := wgtypes.ParseKey(publicKey)
	if err != nil || k == (wgtypes.Key{}) {
		return nil, &invite.BadRequest{Msg: fmt.Sprintf("invalid WireGuard public key %q", publicKey)}
	}
	inv, err := ic.Book.Claim(secret, publicKey)
	if err != nil {
		return nil, err
	}
	spec := PeerSpec{Org: inv.Org, Network: inv.Network, Name: inv.Name, PublicKey: publicKey}
	p, err := iv.pool.create(ctx, spec)
	if err != nil {
		if rerr := ic.Book.Release(secret); rerr != nil {
			iv.log.Error("releasing an invitation after a failed redemption", "peer", inv.Name, "err", rerr)
		}
		return nil, err
	}
	info := peerInfo(iv.r, p)
	iv.metrics.peerCreates.Inc()
	return &invite.Response{Name: p.Name, Org: p.Org, Network: p.Network, Gateway: p.Gateway, Region: p.Region,
		Address: info.Address, DNS: info.DNS, DNSMode: inv.DNS, NetworkPrefix: info.NetworkPrefix,
		GatewayPublicKey: info.GatewayPublicKey, GatewayEndpoint: info.GatewayEndpoint}, nil
}

// register installs the gateway's invitation handlers.
func (iv *Invites) register(h Handlers) {
	h.Handle(opInviteCreate, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var spec InviteSpec
		if err := json.Unmarshal(body, &spec); err != nil {
			return nil, invalid("bad invitation request: %v", err)
		}
		return iv.createLocal(spec)
	})
	h.Handle(opInviteList, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var org string
		if err := json.Unmarshal(body, &org); err != nil {
			return nil, invalid("bad invitation request: %v", err)
		}
		return iv.local(org), nil
	})
	h.Handle(opInviteRemove, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		var ref peerRef
		if err := json.Unmarshal(body, &ref); err != nil {
			return nil, invalid("bad invitation request: %v", err)
		}
		return iv.removeLocal(ref)
	})
}
