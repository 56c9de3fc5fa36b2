package mesh

import (
	"context"
	"slices"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// AppSettings are the app settings a create or `apps update` sets.
type AppSettings struct {
	// WhenNoneHealthy is "all" (default) or "none": see catalog.App.
	WhenNoneHealthy string `json:"when_none_healthy,omitempty"`
}

func (s AppSettings) check() error {
	switch s.WhenNoneHealthy {
	case "", catalog.WhenNoneAll, catalog.WhenNoneNone:
		return nil
	}
	return invalid("invalid when_none_healthy %q: use all or none", s.WhenNoneHealthy)
}

// stored is the value the app record keeps: the default is not spelled out, so an
// app that never chose encodes as before.
func (s AppSettings) stored() string {
	if s.WhenNoneHealthy == catalog.WhenNoneAll {
		return ""
	}
	return s.WhenNoneHealthy
}

// UpdateApp changes an app's settings. Any host may write an app record; the newer
// version wins everywhere.
func (n *Node) UpdateApp(_ context.Context, org, name string, s AppSettings) (*catalog.App, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	n.createMu.Lock()
	r, err := n.app(org, name)
	if err != nil {
		n.createMu.Unlock()
		return nil, err
	}
	a := *r.App
	if a.WhenNoneHealthy == s.stored() {
		n.createMu.Unlock()
		return &a, nil
	}
	a.WhenNoneHealthy = s.stored()
	next := *r
	next.App, next.Version = &a, n.cat.Tick()
	err = n.record(&next)
	n.createMu.Unlock()
	n.flush()
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// checkChecks validates a create's checks and gives them their first status.
func checkChecks(cs []catalog.Check) ([]catalog.Check, error) {
	if len(cs) > catalog.MaxChecks {
		return nil, invalid("at most %d checks per machine", catalog.MaxChecks)
	}
	out := slices.Clone(cs)
	for i := range out {
		out[i].Kind = lower(out[i].Kind)
		if err := out[i].Validate(); err != nil {
			return nil, invalid("%v", err)
		}
		out[i].Status = catalog.HealthUnknown
	}
	return out, nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// SetMachineHealth writes a health transition of a machine of this host: its checks
// with their new statuses. The health runner calls it on transitions only. A
// transition for checks the machine no longer has (changed or stopped meanwhile) is
// dropped.
func (n *Node) SetMachineHealth(id string, checks []catalog.Check) error {
	n.allocMu.Lock()
	r := n.cat.Live(catalog.ID{Kind: catalog.KindMachine, Key: id})
	if r == nil || r.Machine.Host != n.id.Name || !r.Machine.Started() ||
		!slices.EqualFunc(r.Machine.Checks, checks, func(a, b catalog.Check) bool { return a.Config() == b.Config() }) {
		n.allocMu.Unlock()
		return nil
	}
	next := *r
	next.Machine, next.Version = r.Machine.WithHealth(checks), n.cat.Tick()
	err := n.record(&next)
	n.allocMu.Unlock()
	n.flush()
	return err
}

// resetChecks is a machine's checks back at unknown: a machine that starts or stops
// is checked anew.
func resetChecks(m *catalog.Machine) *catalog.Machine {
	if len(m.Checks) == 0 {
		return m
	}
	cs := make([]catalog.Check, len(m.Checks))
	for i, c := range m.Checks {
		cs[i] = c.Config()
		cs[i].Status = catalog.HealthUnknown
	}
	return m.WithHealth(cs)
}
