package mesh

import (
	"context"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
)

// orgOverrides is org's limits overrides, nil when it has none.
func orgOverrides(cat Reader, org string) *catalog.OrgLimits {
	r := cat.Live(catalog.ID{Kind: catalog.KindApp, Key: catalog.LimitsKey(org)})
	if r == nil || r.App == nil {
		return nil
	}
	return r.App.Limits
}

// limitsCarrierNetwork is the network an org's limits carrier sits in: the
// default one, else the first (the previous release indexes apps by network).
func limitsCarrierNetwork(cat Reader, org string) *catalog.Network {
	var first *catalog.Network
	for _, r := range cat.List(catalog.KindNetwork) {
		if r.Network.Org != org {
			continue
		}
		if r.Network.Name == DefaultNetwork {
			return r.Network
		}
		if first == nil || r.Network.Name < first.Name {
			first = r.Network
		}
	}
	return first
}

// SetLimits changes an org's overrides of the per-org quotas. Any host may write
// them; every host writes the same record identity (catalog.LimitsRecord), so the
// newest write wins everywhere, as for apps update.
func (o *Orgs) SetLimits(_ context.Context, org string, u OrgLimitsUpdate) (*OrgInfo, error) {
	if err := requireOrg(o.r, org); err != nil {
		return nil, err
	}
	o.mu.Lock()
	orgRec := o.r.Live(catalog.ID{Kind: catalog.KindOrg, Key: org})
	if orgRec == nil {
		o.mu.Unlock()
		return nil, notFound("org %q not found", org)
	}
	cur := orgOverrides(o.r, org)
	var base catalog.OrgLimits
	if cur != nil {
		base = *cur
	}
	next, err := u.Apply(base)
	if err != nil {
		o.mu.Unlock()
		return nil, err
	}
	if cur == nil || next != *cur {
		nw := limitsCarrierNetwork(o.r, org)
		if nw == nil {
			o.mu.Unlock()
			return nil, conflict("org %q has no network to keep its limits in; create one first", org)
		}
		err = o.w.Record(catalog.LimitsRecord(orgRec, nw, next, o.r.Tick()))
	}
	o.mu.Unlock()
	o.w.Flush()
	if err != nil {
		return nil, err
	}
	for _, info := range o.List() {
		if info.Slug == org {
			return &info, nil
		}
	}
	return nil, notFound("org %q not found", org)
}

// effectiveLimits is what Orgs.List shows of an org's quotas.
func effectiveLimits(l quota.Limits, cat Reader, org string) quota.Effective {
	return l.ForOrg(orgOverrides(cat, org))
}
