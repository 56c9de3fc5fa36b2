package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/quota"
)

// Custom DNS records (`dogwood dns add|list|remove`): one catalog record per
// (network, name, type, value), replicated like every other record. The checks here
// are the ones that need the catalog (apps, other records, ALIAS targets); the pure
// ones are catalog.NormalizeDNSRecord. A check and the write that follows are not
// atomic across hosts: when an app and a record of the same name are created on two
// hosts at once, DNS answers the app everywhere and the record stays listed.

// DNSRecords adds, lists and removes custom records. A record (or a name's one
// ALIAS) is unique in its network (Namer).
type DNSRecords struct {
	r      Reader
	w      Writer
	names  Namer
	limits quota.Limits
	now    func() time.Time
	log    *slog.Logger
}

func dnsInvalid(err error) error {
	var de *catalog.DNSRecordError
	if errors.As(err, &de) {
		return invalid("%s", de.Msg)
	}
	return err
}

func dnsNetwork(cat Reader, org, network string) (*catalog.Network, error) {
	if network == "" {
		network = DefaultNetwork
	}
	if err := ValidNetwork(network); err != nil {
		return nil, err
	}
	if err := requireOrg(cat, org); err != nil {
		return nil, err
	}
	return networkByName(cat, org, network)
}

// Add adds a custom record to a network.
func (ds *DNSRecords) Add(ctx context.Context, spec DNSRecordSpec) (*catalog.DNSRecord, error) {
	ttl := -1
	if spec.TTL != nil {
		if *spec.TTL < 0 {
			return nil, invalid("ttl %d is negative", *spec.TTL)
		}
		ttl = *spec.TTL
	}
	rec, err := catalog.NormalizeDNSRecord(spec.Name, spec.Type, spec.Value, ttl)
	if err != nil {
		return nil, dnsInvalid(err)
	}
	nw, err := dnsNetwork(ds.r, spec.Org, spec.Network)
	if err != nil {
		return nil, err
	}
	if err := orgLimit(ds.limits, ds.r, quota.DNSRecords, nw.Org); err != nil {
		return nil, err
	}
	rec.Org, rec.Network, rec.NetworkID = nw.Org, nw.Name, nw.ID
	rec.CreatedAt = ds.now().UTC()

	snap := ds.r.Snapshot()
	nv := snap.Networks[nw.ID]
	var existing []*catalog.DNSRecord
	if nv != nil && nv.Records != nil {
		existing = nv.Records.List
	}
	key := catalog.DNSRecordKey(rec.NetworkID, rec.Name, rec.Type, rec.Value)
	if cur := ds.r.Live(catalog.ID{Kind: catalog.KindDNSRecord, Key: key}); cur != nil && cur.DNS != nil && cur.DNS.Value == rec.Value {
		return nil, conflict("%s %s %s already exists in network %s/%s", rec.Name, rec.Type, rec.Value, nw.Org, nw.Name)
	}
	// An ALIAS added to a name that has one replaces it in one write: the
	// blue/green switch leaves no moment in which the name does not exist.
	var replaced *catalog.DNSRecord
	if rec.Type == "ALIAS" {
		for i, e := range existing {
			if e.Name == rec.Name && e.Type == "ALIAS" {
				replaced = e
				existing = append(existing[:i:i], existing[i+1:]...)
				break
			}
		}
	}
	if label := catalog.DNSNameApp(rec.Name); nv != nil && nv.Apps[label] != nil {
		return nil, invalid("record name %s collides with app %q: %s.internal and every name under it are generated for the app", rec.Name, label, label)
	}
	if err := catalog.CheckDNSCoexist(existing, &rec); err != nil {
		return nil, dnsInvalid(err)
	}
	if rec.Type == "ALIAS" || (rec.Type == "CNAME" && catalog.InZone(rec.Value)) {
		if err := checkTarget(nv, existing, &rec); err != nil {
			return nil, err
		}
	}
	if rec.Type == "ALIAS" {
		return ds.writeAlias(ctx, replaced, &rec, key)
	}
	r, err := ds.names.CreateNamed(ctx, func() *catalog.Record {
		return &catalog.Record{Kind: catalog.KindDNSRecord, Key: key, DNS: &rec}
	}, catalog.ID{Kind: catalog.KindDNSRecord, Key: key}, fmt.Sprintf("%s %s %s", rec.Name, rec.Type, rec.Value))
	if err != nil {
		return nil, err
	}
	return r.DNS, nil
}

// writeAlias creates an ALIAS or switches it to another target: the name's one
// ALIAS record gets a new generation, which replaces the old target in one write
// (no moment without the name). Two hosts switching one name at once meet on that
// record; the merge order picks one and the other caller gets an error.
func (ds *DNSRecords) writeAlias(ctx context.Context, old, rec *catalog.DNSRecord, key string) (*catalog.DNSRecord, error) {
	_, err := ds.names.WriteNamed(ctx, NamedWrite{
		ID:   catalog.ID{Kind: catalog.KindDNSRecord, Key: key},
		What: rec.Name + " ALIAS",
		Build: func() *catalog.Record {
			return &catalog.Record{Kind: catalog.KindDNSRecord, Key: key, DNS: rec}
		},
		Taken: func(cur *catalog.Record, _ uint32) error {
			if cur != nil && !cur.Deleted && cur.DNS != nil && cur.DNS.Value == rec.Value {
				return conflict("%s ALIAS %s already exists", rec.Name, rec.Value)
			}
			return nil
		},
		Raced: func(now *catalog.Record, gen uint32) error {
			if now != nil && now.Gen >= gen {
				return conflict("%s ALIAS was switched concurrently on this host", rec.Name)
			}
			return nil
		},
		Lost: rec.Name + " ALIAS was switched concurrently on another host, which won",
	})
	if err != nil {
		return nil, err
	}
	if old != nil {
		ds.log.Info("dns alias switched", "name", rec.Name, "from", old.Value, "to", rec.Value)
	}
	return rec, nil
}

// checkTarget refuses an ALIAS whose target does not exist in the network, and an
// ALIAS or in-zone CNAME that would close a loop.
func checkTarget(nv *catalog.NetworkView, existing []*catalog.DNSRecord, rec *catalog.DNSRecord) error {
	chain := func(name string) string { // the ALIAS or CNAME target of a custom name, if any
		for _, e := range existing {
			if e.Name == name && (e.Type == "ALIAS" || e.Type == "CNAME") {
				return e.Value
			}
		}
		return ""
	}
	t := rec.Value
	for i := 0; i < 16 && catalog.InZone(t); i++ {
		if t == rec.Name {
			return invalid("%s %s %s would make a loop", rec.Name, rec.Type, rec.Value)
		}
		if t = chain(t); t == "" {
			break
		}
	}
	if rec.Type != "ALIAS" {
		return nil
	}
	target := rec.Value
	if nv != nil {
		if nv.Apps[catalog.DNSNameApp(target)] != nil {
			return nil
		}
		if peer, ok := strings.CutSuffix(target, "._peer.internal"); ok && !strings.Contains(peer, ".") {
			for name := range nv.Peers {
				if strings.EqualFold(name, peer) {
					return nil
				}
			}
		}
		for _, e := range existing {
			if e.Name == target {
				return nil
			}
		}
	}
	return invalid("ALIAS target %s does not exist in network %s/%s: name an app (api-green), a name generated for one (ord.api-green) or another record of the network", target, rec.Org, rec.Network)
}

// List lists custom records, of one org if org is set, sorted by org, network,
// name, type and value.
func (ds *DNSRecords) List(org string) ([]catalog.DNSRecord, error) {
	if org != "" {
		if err := requireOrg(ds.r, org); err != nil {
			return nil, err
		}
	}
	snap := ds.r.Snapshot()
	out := []catalog.DNSRecord{}
	for _, r := range ds.r.List(catalog.KindDNSRecord) {
		d := r.DNS
		if d == nil || (org != "" && d.Org != org) || snap.Networks[d.NetworkID] == nil {
			continue
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		switch {
		case a.Org != b.Org:
			return a.Org < b.Org
		case a.Network != b.Network:
			return a.Network < b.Network
		case a.Name != b.Name:
			return a.Name < b.Name
		case a.Type != b.Type:
			return a.Type < b.Type
		}
		return a.Value < b.Value
	})
	return out, nil
}

// Remove removes the records of a name, or only those of one type, or the one with
// a value. It returns what it removed; nothing matching is an error.
func (ds *DNSRecords) Remove(ctx context.Context, f DNSRecordFilter) ([]catalog.DNSRecord, error) {
	name, err := catalog.NormalizeDNSName(f.Name)
	if err != nil {
		return nil, dnsInvalid(err)
	}
	typ, value := strings.ToUpper(strings.TrimSpace(f.Type)), ""
	if f.Value != "" {
		if typ == "" {
			return nil, invalid("a value needs a type: dogwood dns remove NAME TYPE VALUE")
		}
		rec, err := catalog.NormalizeDNSRecord(f.Name, typ, f.Value, -1)
		if err != nil {
			return nil, dnsInvalid(err)
		}
		value = rec.Value
	} else if typ != "" && !validDNSType(typ) {
		return nil, invalid("record type %q: use one of %s", f.Type, strings.Join(catalog.DNSTypes(), ", "))
	}
	nw, err := dnsNetwork(ds.r, f.Org, f.Network)
	if err != nil {
		return nil, err
	}
	var hit []*catalog.Record
	var out []catalog.DNSRecord
	if nv := ds.r.Snapshot().Networks[nw.ID]; nv != nil && nv.Records != nil {
		for _, d := range nv.Records.List {
			if d.Name != name || (typ != "" && d.Type != typ) || (value != "" && d.Value != value) {
				continue
			}
			if r := ds.r.Live(catalog.ID{Kind: catalog.KindDNSRecord, Key: catalog.DNSRecordKey(d.NetworkID, d.Name, d.Type, d.Value)}); r != nil {
				hit = append(hit, r)
				out = append(out, *d)
			}
		}
	}
	if len(hit) == 0 {
		what := strings.TrimSpace(strings.Join([]string{name, typ, value}, " "))
		return nil, notFound("no record %s in network %s/%s", what, nw.Org, nw.Name)
	}
	if err := tombstone(ds.w, hit...); err != nil {
		return nil, err
	}
	return out, nil
}

func validDNSType(t string) bool {
	for _, x := range catalog.DNSTypes() {
		if x == t {
			return true
		}
	}
	return false
}

// orgDNSRecords are the live custom records of an org, which go with its networks.
func orgDNSRecords(cat Reader, org string) []*catalog.Record {
	var out []*catalog.Record
	for _, r := range cat.List(catalog.KindDNSRecord) {
		if r.DNS != nil && r.DNS.Org == org {
			out = append(out, r)
		}
	}
	return out
}

// appNameFree refuses an app whose name a custom record of its network uses as its
// last label (the app would take over the record's names).
func appNameFree(cat Reader, netID uint32, app string) error {
	nv := cat.Snapshot().Networks[netID]
	if nv == nil || nv.Records == nil {
		return nil
	}
	for _, d := range nv.Records.List {
		if catalog.DNSNameApp(d.Name) == app {
			return invalid("app name %q is taken by the DNS record %s %s in network %s/%s; remove it first (dogwood dns remove %s %s)",
				app, d.Name, d.Type, nv.Org, nv.Name, nv.Org, d.Name)
		}
	}
	return nil
}
