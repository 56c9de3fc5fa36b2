package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
)

// Apps creates, lists, updates and removes apps. An app's name is unique in its org
// (Namer); any host may write an app record.
type Apps struct {
	r      Reader
	w      Writer
	names  Namer
	limits quota.Limits

	// mu serializes apps update's read-modify-write of one app record, so two
	// updates on this host never write over each other.
	mu sync.Mutex
}

// AppSpec is an app to create.
type AppSpec struct {
	Name, Org string
	// Network is the org's network the app lives in; empty means DefaultNetwork.
	Network string
	// RequestID is the client's id for this create: a retry of a create that may or
	// may not have happened returns the app it made instead of failing or creating
	// it twice.
	RequestID string
	Settings  AppSettings
}

// Create creates an app in a network of an org.
func (as *Apps) Create(ctx context.Context, spec AppSpec) (*catalog.App, error) {
	name, org, network := spec.Name, spec.Org, spec.Network
	if err := validNewApp(name); err != nil {
		return nil, err
	}
	if err := spec.Settings.Check(); err != nil {
		return nil, err
	}
	if err := ValidRequestID(spec.RequestID); err != nil {
		return nil, err
	}
	if a, err := as.byRequest(spec.RequestID); a != nil || err != nil {
		return a, err
	}
	if network == "" {
		network = DefaultNetwork
	}
	if err := ValidNetwork(network); err != nil {
		return nil, err
	}
	if err := requireOrg(as.r, org); err != nil {
		return nil, err
	}
	nw, err := networkByName(as.r, org, network)
	if err != nil {
		return nil, err
	}
	if err := appNameFree(as.r, nw.ID, name); err != nil {
		return nil, err
	}
	if err := orgLimit(as.limits, as.r, quota.Apps, org); err != nil {
		return nil, err
	}
	key := catalog.AppKey(org, name)
	r, err := as.names.CreateNamed(ctx, func() *catalog.Record {
		return &catalog.Record{Kind: catalog.KindApp, Key: key, App: &catalog.App{Name: name, Org: org, Network: network, NetworkID: nw.ID, RequestID: spec.RequestID,
			WhenNoneHealthy: spec.Settings.Stored()}}
	}, catalog.ID{Kind: catalog.KindApp, Key: key}, fmt.Sprintf("app %q", name))
	if err != nil {
		// A concurrent retry of the same request may have won the name.
		if a, aerr := as.byRequest(spec.RequestID); a != nil {
			return a, aerr
		}
		return nil, err
	}
	return r.App, nil
}

func (as *Apps) byRequest(rid string) (*catalog.App, error) {
	r := as.r.ByRequest(catalog.KindApp, rid)
	switch {
	case r == nil:
		return nil, nil
	case r.Deleted:
		return nil, conflict("request %s created app %q, which was removed since", rid, r.Key)
	}
	return r.App, nil
}

// List lists apps, of one org if org is set.
func (as *Apps) List(org string) ([]catalog.App, error) {
	if org != "" {
		if err := requireOrg(as.r, org); err != nil {
			return nil, err
		}
	}
	out := []catalog.App{}
	for _, r := range as.r.List(catalog.KindApp) {
		if (org == "" || r.App.Org == org) && !r.App.IsLimits() {
			out = append(out, *r.App)
		}
	}
	return out, nil
}

// Remove removes an app that has no machines left. org may be empty when the name
// is used in one org only.
func (as *Apps) Remove(ctx context.Context, org, name string) error {
	r, err := findApp(as.r, org, name)
	if err != nil {
		return err
	}
	if a := as.r.Snapshot().Apps[r.Key]; a != nil && len(a.Machines) > 0 {
		return conflict("app %q still has %d machines; destroy them first", name, len(a.Machines))
	}
	return tombstone(as.w, r)
}

// findApp finds the live app record for a name. App names are unique within an org,
// so without an org the name must be used in exactly one org; otherwise the caller
// must say which (a usage error, exit 2).
func findApp(cat Reader, org, name string) (*catalog.Record, error) {
	if err := ValidApp(name); err != nil {
		return nil, err
	}
	if org != "" {
		if err := ValidOrg(org); err != nil {
			return nil, err
		}
		r := cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.AppKey(org, name)})
		if r == nil {
			return nil, notFound("app %q not found in org %q", name, org)
		}
		return r, nil
	}
	var found []*catalog.Record
	for _, r := range cat.List(catalog.KindApp) {
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
