package mesh

import (
	"context"
	"slices"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Update changes an app's settings. Any host may write an app record; the newer
// version wins everywhere.
func (as *Apps) Update(_ context.Context, org, name string, s AppSettings) (*catalog.App, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	as.mu.Lock()
	r, err := findApp(as.r, org, name)
	if err != nil {
		as.mu.Unlock()
		return nil, err
	}
	a := *r.App
	if a.WhenNoneHealthy == s.Stored() {
		as.mu.Unlock()
		return &a, nil
	}
	a.WhenNoneHealthy = s.Stored()
	next := *r
	next.App, next.Version = &a, as.r.Tick()
	err = as.w.Record(&next)
	as.mu.Unlock()
	as.w.Flush()
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

// SetHealth writes a health transition of a machine of this host: its checks with
// their new statuses. The health runner calls it on transitions only. A transition
// for checks the machine no longer has (changed or stopped meanwhile) is dropped.
func (ms *Machines) SetHealth(id string, checks []catalog.Check) error {
	ms.mu.Lock()
	r := ms.r.Live(catalog.ID{Kind: catalog.KindMachine, Key: id})
	if r == nil || r.Machine.Host != ms.host || !r.Machine.Started() ||
		!slices.EqualFunc(r.Machine.Checks, checks, func(a, b catalog.Check) bool { return a.Config() == b.Config() }) {
		ms.mu.Unlock()
		return nil
	}
	next := *r
	next.Machine, next.Version = r.Machine.WithHealth(checks), ms.r.Tick()
	err := ms.w.Record(&next)
	ms.mu.Unlock()
	ms.w.Flush()
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
