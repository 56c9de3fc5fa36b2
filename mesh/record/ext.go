package record

import (
	"encoding/json"
	"maps"
	"strings"
)

// Fields added after the binary encoding was fixed ride in places an agent of the
// previous release already reads, stores and sends on unchanged, so a mixed-version
// cluster keeps working and keeps every record whole: the previous release's decoder
// refuses unknown flags, bodies and trailing bytes (a whole batch with them), and its
// JSON decoding drops unknown fields (an arbiter would keep a copy without them, with
// the same version, that anti-entropy never repairs). So:
//
//   - a machine's health and checks are metadata entries under keys no user key can
//     be (user keys are DNS labels: no '.'), which the previous release shows as
//     metadata and never matches in a kv._metadata name;
//   - an app's when_none_healthy follows its request id after a space (request ids
//     have none), which the previous release only compares with a retried create's.
//
// Records without the new fields encode exactly as before. Extension entries this
// release does not know stay plain metadata, so a newer release's survive a round trip
// here too. Like Kubernetes' annotations for alpha fields: unglamorous, but a rolling
// upgrade loses nothing.
const (
	extHealth = "dogwood.health"
	extChecks = "dogwood.checks"
	// extAppSep separates an app's request id from its extension pairs.
	extAppSep        = " "
	extWhenNoneHealt = "when_none_healthy="
)

// machineMetadata is the metadata a machine is encoded with: its own plus the
// extension entries (the same map when there are none).
func machineMetadata(a *MachineAttrs) map[string]string {
	base := extMetadata(a) // source and the CNI fields (attrsext.go)
	if a.Health == "" && len(a.Checks) == 0 {
		return base
	}
	md := make(map[string]string, len(base)+2)
	maps.Copy(md, base)
	if a.Health != "" {
		md[extHealth] = a.Health
	}
	if len(a.Checks) > 0 {
		b, err := json.Marshal(a.Checks)
		if err == nil {
			md[extChecks] = string(b)
		}
	}
	return md
}

// liftMachineExt moves extension entries out of a decoded machine's metadata.
func liftMachineExt(a *MachineAttrs) {
	liftExt(a)
	if len(a.Metadata) == 0 {
		return
	}
	if h, ok := a.Metadata[extHealth]; ok && (h == HealthPassing || h == HealthCritical || h == HealthUnknown) {
		a.Health = h
		delete(a.Metadata, extHealth)
	}
	if s, ok := a.Metadata[extChecks]; ok {
		// Leniently: a newer release may have added fields to its checks.
		var pcs []plainCheck
		if json.Unmarshal([]byte(s), &pcs) == nil && len(pcs) > 0 {
			cs := make([]Check, len(pcs))
			for i := range pcs {
				cs[i] = Check(pcs[i])
			}
			for i := range cs {
				if t := cs[i].CheckedAt; t != nil {
					u := t.UTC()
					cs[i].CheckedAt = &u
				}
			}
			a.Checks = cs
			delete(a.Metadata, extChecks)
		}
	}
	if len(a.Metadata) == 0 {
		a.Metadata = nil
	}
}

// appRequestID is the request id an app is encoded with: its own, then its
// extension pairs.
func appRequestID(a *App) string {
	if a.Limits != nil {
		return limitsPrefix + a.Limits.String()
	}
	if a.WhenNoneHealthy == "" {
		return a.RequestID
	}
	return a.RequestID + extAppSep + extWhenNoneHealt + a.WhenNoneHealthy
}

// liftAppExt splits a decoded app's request id into the id and its extension pairs.
// Anything it does not recognize stays in the request id as it was.
func liftAppExt(a *App) {
	if a.IsLimits() {
		if v, ok := strings.CutPrefix(a.RequestID, limitsPrefix); ok {
			if l, ok := parseOrgLimits(v); ok {
				a.RequestID, a.Limits = "", &l
			}
		}
		return
	}
	rid, rest, ok := strings.Cut(a.RequestID, extAppSep)
	if !ok {
		return
	}
	v, ok := strings.CutPrefix(rest, extWhenNoneHealt)
	if !ok || (v != WhenNoneAll && v != WhenNoneNone) {
		return
	}
	a.RequestID, a.WhenNoneHealthy = rid, v
}

// Portable returns r as the previous release reads it in JSON (an RPC body): the
// fields it does not know moved into their carriers. r is not modified; a record
// with nothing to move is returned as it is.
func (r *Record) Portable() *Record {
	switch {
	case r.App != nil && (r.App.WhenNoneHealthy != "" || r.App.Limits != nil):
		out, a := *r, *r.App
		a.RequestID, a.WhenNoneHealthy, a.Limits = appRequestID(r.App), "", nil
		out.App = &a
		return &out
	case r.Machine != nil && r.Machine.MachineAttrs != nil && hasExt(r.Machine.MachineAttrs):
		out, m := *r, *r.Machine
		a := *m.MachineAttrs
		a.Metadata, a.Health, a.Checks = machineMetadata(m.MachineAttrs), "", nil
		a.Source, a.Ifname, a.CNINetwork = "", "", ""
		m.MachineAttrs = &a
		out.Machine = &m
		return &out
	}
	return r
}

// hasExt reports whether a has a field the previous release does not know.
func hasExt(a *MachineAttrs) bool {
	return a.Health != "" || len(a.Checks) > 0 || a.Source != "" || a.Ifname != "" || a.CNINetwork != ""
}

// Unportable undoes Portable in place on a record decoded from JSON.
func (r *Record) Unportable() {
	if r.App != nil {
		liftAppExt(r.App)
	}
	if r.Machine != nil && r.Machine.MachineAttrs != nil {
		liftMachineExt(r.Machine.MachineAttrs)
	}
}
