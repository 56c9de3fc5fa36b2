package mesh

import (
	"context"
	"fmt"
	"github.com/dogwood/dogwood/mesh/quota"
	"strings"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// CreateApp creates an app in a network of an org.
func (n *Node) CreateApp(ctx context.Context, name, org, network string) (*catalog.App, error) {
	return n.CreateAppRequest(ctx, name, org, network, "")
}

// CreateAppRequest is CreateApp with the client's request id: a retry of a create
// that may or may not have happened returns the app it made instead of failing or
// creating it twice.
func (n *Node) CreateAppRequest(ctx context.Context, name, org, network, requestID string, settings ...AppSettings) (*catalog.App, error) {
	if err := validNewApp(name); err != nil {
		return nil, err
	}
	var set AppSettings
	for _, s := range settings {
		if err := s.check(); err != nil {
			return nil, err
		}
		set = s
	}
	if err := ValidRequestID(requestID); err != nil {
		return nil, err
	}
	if a, err := n.appByRequest(requestID); a != nil || err != nil {
		return a, err
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
	if err := orgLimit(n.cfg.Limits, n.cat, quota.Apps, org); err != nil {
		return nil, err
	}
	key := catalog.AppKey(org, name)
	r, err := n.createNamed(ctx, func() *catalog.Record {
		return &catalog.Record{Kind: catalog.KindApp, Key: key, App: &catalog.App{Name: name, Org: org, Network: network, NetworkID: nw.ID, RequestID: requestID,
			WhenNoneHealthy: set.stored()}}
	}, catalog.ID{Kind: catalog.KindApp, Key: key}, fmt.Sprintf("app %q", name))
	if err != nil {
		// A concurrent retry of the same request may have won the name.
		if a, aerr := n.appByRequest(requestID); a != nil {
			return a, aerr
		}
		return nil, err
	}
	return r.App, nil
}

func (n *Node) appByRequest(rid string) (*catalog.App, error) {
	r := n.cat.ByRequest(catalog.KindApp, rid)
	switch {
	case r == nil:
		return nil, nil
	case r.Deleted:
		return nil, conflict("request %s created app %q, which was removed since", rid, r.Key)
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
		if (org == "" || r.App.Org == org) && !r.App.IsLimits() {
			out = append(out, *r.App)
		}
	}
	return out, nil
}

// RemoveApp removes an app that has no machines left. org may be empty when the
// name is used in one org only.
func (n *Node) RemoveApp(ctx context.Context, org, name string) error {
	r, err := n.app(org, name)
	if err != nil {
		return err
	}
	if a := n.cat.Snapshot().Apps[r.Key]; a != nil && len(a.Machines) > 0 {
		return conflict("app %q still has %d machines; destroy them first", name, len(a.Machines))
	}
	return n.tombstone(r)
}

// app finds the live app record for a name. App names are unique within an org, so
// without an org the name must be used in exactly one org; otherwise the caller must
// say which (a usage error, exit 2).
func (n *Node) app(org, name string) (*catalog.Record, error) {
	if err := ValidApp(name); err != nil {
		return nil, err
	}
	if org != "" {
		if err := ValidOrg(org); err != nil {
			return nil, err
		}
		r := n.cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey(org, name)})
		if r == nil {
			return nil, notFound("app %q not found in org %q", name, org)
		}
		return r, nil
	}
	var found []*catalog.Record
	for _, r := range n.cat.List(catalog.KindApp) {
		if r.App.Name == name {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, notFound("app %q not found", name)
	case 1:
		return found[0], nil
	}
	orgs := make([]string, len(found))
	for i, r := range found {
		orgs[i] = r.App.Org
	}
	return nil, invalid("app %q exists in several orgs (%s): say which with --org", name, strings.Join(orgs, ", "))
}
