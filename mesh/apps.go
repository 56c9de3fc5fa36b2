package mesh

import (
	"context"
	"fmt"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// CreateApp creates an app in a network of an org.
func (n *Node) CreateApp(ctx context.Context, name, org, network string) (*catalog.App, error) {
	if err := validNewApp(name); err != nil {
		return nil, err
	}
	if network == "" {
		network = DefaultNetwork
	}
	if err := ValidNetwork(network); err != nil {
		return nil, err
	}
	if err := n.requireOrg(org); err != nil {
		return nil, err
	}
	nw, err := n.networkByName(org, network)
	if err != nil {
		return nil, err
	}
	if err := n.appNameFree(nw.ID, name); err != nil {
		return nil, err
	}
	r, err := n.createNamed(ctx, func(uint32, catalog.Stamp) *catalog.Record {
		return &catalog.Record{Kind: catalog.KindApp, Key: name, App: &catalog.App{Name: name, Org: org, Network: network, NetworkID: nw.ID}}
	}, catalog.ID{Kind: catalog.KindApp, Key: name}, fmt.Sprintf("app %q", name))
	if err != nil {
		return nil, err
	}
	return r.App, nil
}

// ListApps lists apps, of one org if org is set.
func (n *Node) ListApps(org string) ([]catalog.App, error) {
	if org != "" {
		if err := n.requireOrg(org); err != nil {
			return nil, err
		}
	}
	out := []catalog.App{}
	for _, r := range n.cat.List(catalog.KindApp) {
		if org == "" || r.App.Org == org {
			out = append(out, *r.App)
		}
	}
	return out, nil
}

// RemoveApp removes an app that has no machines left.
func (n *Node) RemoveApp(ctx context.Context, name string) error {
	if err := ValidApp(name); err != nil {
		return err
	}
	r := n.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: name})
	if r == nil {
		return notFound("app %q not found", name)
	}
	if a := n.cat.Snapshot().Apps[name]; a != nil && len(a.Machines) > 0 {
		return conflict("app %q still has %d machines; destroy them first", name, len(a.Machines))
	}
	return n.tombstone(r)
}
