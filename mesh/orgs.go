package mesh

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Orgs creates, lists and removes orgs and sets their limits. An org's slug is
// unique in the cluster (Namer); an org is created with its default network.
type Orgs struct {
	r        Reader
	w        Writer
	names    Namer
	networks *Networks
	limits   quota.Limits
	now      func() time.Time

	// mu serializes set-limits' read-modify-write of an org's limits record, so
	// two updates on this host never write over each other.
	mu sync.Mutex
}

// Networks creates and lists networks. A network's name is unique in its org and
// its id in the cluster (Namer).
type Networks struct {
	r     Reader
	names Namer
	// randID draws a network id to try (sixpn.Random32).
	randID func() uint32
}

func requireOrg(cat Reader, slug string) error {
	if err := ValidOrg(slug); err != nil {
		return err
	}
	if cat.Live(catalog.ID{Kind: catalog.KindOrg, Key: slug}) == nil {
		return notFound("org %q not found", slug)
	}
	return nil
}

func networkInfo(nw *catalog.Network) NetworkInfo {
	return NetworkInfo{Org: nw.Org, Name: nw.Name, ID: nw.ID, Prefix: sixpn.NetworkPrefix(nw.ID).String()}
}

// Create creates an org with its default network.
func (o *Orgs) Create(ctx context.Context, slug string) (*OrgInfo, error) {
	if err := ValidOrg(slug); err != nil {
		return nil, err
	}
	now := o.now().UTC()
	if _, err := o.names.CreateNamed(ctx, func() *catalog.Record {
		return &catalog.Record{Kind: catalog.KindOrg, Key: slug, Org: &catalog.Org{Slug: slug, CreatedAt: now}}
	}, catalog.ID{Kind: catalog.KindOrg, Key: slug}, fmt.Sprintf("org %q", slug)); err != nil {
		return nil, err
	}
	nw, err := o.networks.Create(ctx, slug, DefaultNetwork)
	if err != nil {
		return nil, fmt.Errorf("org %q created but its default network failed: %w", slug, err)
	}
	return &OrgInfo{Slug: slug, CreatedAt: now, Networks: []NetworkInfo{*nw}, Limits: effectiveLimits(o.limits, o.r, slug)}, nil
}

// List lists orgs with their networks.
func (o *Orgs) List() []OrgInfo {
	byOrg := map[string][]NetworkInfo{}
	for _, r := range o.r.List(catalog.KindNetwork) {
		byOrg[r.Network.Org] = append(byOrg[r.Network.Org], networkInfo(r.Network))
	}
	out := []OrgInfo{}
	for _, r := range o.r.List(catalog.KindOrg) {
		nets := byOrg[r.Key]
		if nets == nil {
			nets = []NetworkInfo{}
		}
		out = append(out, OrgInfo{Slug: r.Key, CreatedAt: r.Org.CreatedAt, Networks: nets, Limits: effectiveLimits(o.limits, o.r, r.Key)})
	}
	return out
}

// Remove removes an org that has no apps and no peers, with its networks.
func (o *Orgs) Remove(ctx context.Context, slug string) error {
	if err := requireOrg(o.r, slug); err != nil {
		return err
	}
	var carrier *catalog.Record
	for _, r := range o.r.List(catalog.KindApp) {
		if r.App.Org == slug && r.App.IsLimits() {
			carrier = r
			continue
		}
		if r.App.Org == slug {
			return conflict("org %q still has app %q; remove its apps first", slug, r.Key)
		}
	}
	for _, r := range o.r.List(catalog.KindPeer) {
		if r.Peer.Org == slug {
			return conflict("org %q still has peer %q; remove its peers first", slug, r.Peer.Name)
		}
	}
	rs := []*catalog.Record{o.r.Live(catalog.ID{Kind: catalog.KindOrg, Key: slug})}
	for _, r := range o.r.List(catalog.KindNetwork) {
		if r.Network.Org == slug {
			rs = append(rs, r)
		}
	}
	rs = append(rs, orgDNSRecords(o.r, slug)...)
	if carrier != nil {
		rs = append(rs, carrier)
	}
	return tombstone(o.w, rs...)
}

func networkByName(cat Reader, org, name string) (*catalog.Network, error) {
	r := cat.Live(catalog.ID{Kind: catalog.KindNetwork, Key: catalog.NetworkKey(org, name)})
	if r == nil {
		return nil, notFound("network %q not found in org %q", name, org)
	}
	return r.Network, nil
}

// Create creates a network with a fresh random id, unique in the cluster.
func (ns *Networks) Create(ctx context.Context, org, name string) (*NetworkInfo, error) {
	if err := ValidNetwork(name); err != nil {
		return nil, err
	}
	if err := requireOrg(ns.r, org); err != nil {
		return nil, err
	}
	key := catalog.NetworkKey(org, name)
	r, err := ns.names.CreateNamed(ctx, func() *catalog.Record {
		id := ns.randID()
		for len(ns.r.NetworkIDClaims(id)) > 0 {
			id = ns.randID()
		}
		return &catalog.Record{Kind: catalog.KindNetwork, Key: key, Network: &catalog.Network{Org: org, Name: name, ID: id}}
	}, catalog.ID{Kind: catalog.KindNetwork, Key: key}, fmt.Sprintf("network %q in org %q", name, org))
	if err != nil {
		return nil, err
	}
	// The arbiters of our network id told us about every network claiming it. Of two
	// claims the earlier create keeps the id; if that is not us, take another id
	// now, before anything was allocated in the network.
	for attempt := 0; attempt < 5; attempt++ {
		lost := false
		for _, k := range ns.r.NetworkIDClaims(r.Network.ID) {
			if o := ns.r.Get(catalog.ID{Kind: catalog.KindNetwork, Key: k}); o != nil && k != key && o.Created.Compare(r.Created) < 0 {
				lost = true
			}
		}
		if !lost {
			info := networkInfo(r.Network)
			return &info, nil
		}
		nw := *r.Network
		for len(ns.r.NetworkIDClaims(nw.ID)) > 0 {
			nw.ID = ns.randID()
		}
		next := *r
		next.Network, next.Version = &nw, ns.r.Tick()
		if err := ns.names.Reclaim(ctx, &next, fmt.Sprintf("network %q in org %q", name, org)); err != nil {
			return nil, err
		}
		r = &next
	}
	return nil, conflict("could not find a unique network id")
}

// List lists networks, of one org if org is set.
func (ns *Networks) List(org string) ([]NetworkInfo, error) {
	if org != "" {
		if err := requireOrg(ns.r, org); err != nil {
			return nil, err
		}
	}
	out := []NetworkInfo{}
	for _, r := range ns.r.List(catalog.KindNetwork) {
		if org == "" || r.Network.Org == org {
			out = append(out, networkInfo(r.Network))
		}
	}
	return out, nil
}
