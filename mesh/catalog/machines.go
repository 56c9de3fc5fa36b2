package catalog

import (
	"hash/maphash"
	"maps"
	"slices"
	"sort"

	"github.com/dogwood/dogwood/mesh/record"
)

// Machine records are most of a large catalog (a million in a big fleet), so the
// catalog holds them in a compact form of their own instead of as *Record: one
// allocation per record (mentry) with the header's ordering fields next to the
// machine, placement and attributes shared with every machine that has equal ones,
// the id string shared with the key, and no index that repeats per machine what
// another one already holds. Records are materialized (Record, header) when asked
// for; the *Machine they point to is the catalog's own, shared with snapshots.

// mentry is one machine record: the merge header and the machine. The stamps are
// kept as their parts: two Stamps would carry 8 bytes of padding, which is what
// keeps an entry in the 144-byte size class.
type mentry struct {
	m            Machine
	createdClock uint64
	versionClock uint64
	deletedAt    int64
	createdNode  uint32
	versionNode  uint32
	gen          uint32
	deleted      bool
	// bodyless is a tombstone that arrived without its machine (only m.ID is set).
	bodyless bool
}

func (e *mentry) created() Stamp { return Stamp{Clock: e.createdClock, Node: e.createdNode} }
func (e *mentry) version() Stamp { return Stamp{Clock: e.versionClock, Node: e.versionNode} }

func (e *mentry) header() Header {
	return Header{Kind: KindMachine, Key: e.m.ID, Gen: e.gen, Created: e.created(), Version: e.version(), Deleted: e.deleted}
}

// record materializes the record e holds. Its Machine is the catalog's: read-only.
func (e *mentry) record() *Record {
	r := e.header().Record()
	r.DeletedAt = e.deletedAt
	if !e.bodyless {
		r.Machine = &e.m
	}
	return r
}

// live reports whether e is a live machine.
func (e *mentry) live() bool { return !e.deleted }

// newEntry makes the catalog's copy of a machine record, with shared placement and
// attributes. The caller's record is not modified.
func (c *Catalog) newEntry(r *Record) *mentry {
	e := &mentry{createdClock: r.Created.Clock, createdNode: r.Created.Node, versionClock: r.Version.Clock,
		versionNode: r.Version.Node, deletedAt: r.DeletedAt, gen: r.Gen, deleted: r.Deleted}
	if r.Machine == nil {
		e.bodyless = true
		e.m.ID = r.Key
		return e
	}
	e.m = *r.Machine
	e.m.ID = r.Key // one string for key and id (Validate makes them equal on live records)
	e.m.MachinePlace = c.intern.internPlace(r.Machine.MachinePlace)
	e.m.MachineAttrs = c.intern.internAttrs(r.Machine.MachineAttrs)
	return e
}

// releaseEntry drops e's references to shared placement and attributes.
func (c *Catalog) releaseEntry(e *mentry) {
	if e.bodyless {
		return
	}
	c.intern.places.release(e.m.MachinePlace)
	c.intern.attrs.release(e.m.MachineAttrs)
}

// interner shares equal placements and attributes between machine records. It
// belongs to one catalog and is used under its lock.
type interner struct {
	seed   maphash.Seed // also keys the catalog's machine tables
	places refTable[MachinePlace]
	attrs  refTable[MachineAttrs]
	strs   map[string]string
}

func newInterner() interner {
	seed := maphash.MakeSeed()
	return interner{
		seed: seed,
		places: refTable[MachinePlace]{m: map[uint64]*ref[MachinePlace]{},
			hash:  func(p *MachinePlace) uint64 { return maphash.Comparable(seed, *p) },
			equal: func(a, b *MachinePlace) bool { return *a == *b }},
		attrs: refTable[MachineAttrs]{m: map[uint64]*ref[MachineAttrs]{},
			hash:  func(a *MachineAttrs) uint64 { return attrsHash(seed, a) },
			equal: attrsEqual},
		strs: map[string]string{},
	}
}

// refTable holds one shared copy of each distinct value and counts the records that
// use it, so that what no record uses any more is forgotten.
type refTable[T any] struct {
	m     map[uint64]*ref[T]
	hash  func(*T) uint64
	equal func(a, b *T) bool
}

type ref[T any] struct {
	v    *T
	n    int
	next *ref[T]
}

// get returns the shared copy equal to v, made by clone if there is none yet.
func (t *refTable[T]) get(v *T, clone func(*T) *T) *T {
	k := t.hash(v)
	for r := t.m[k]; r != nil; r = r.next {
		if t.equal(r.v, v) {
			r.n++
			return r.v
		}
	}
	cp := clone(v)
	t.m[k] = &ref[T]{v: cp, n: 1, next: t.m[k]}
	return cp
}

// release drops one use of the shared copy v.
func (t *refTable[T]) release(v *T) {
	k := t.hash(v)
	var prev *ref[T]
	for r := t.m[k]; r != nil; prev, r = r, r.next {
		if r.v != v {
			continue
		}
		if r.n--; r.n > 0 {
			return
		}
		switch {
		case prev != nil:
			prev.next = r.next
		case r.next != nil:
			t.m[k] = r.next
		default:
			delete(t.m, k)
		}
		return
	}
}

// str returns one shared copy of a name that recurs across places (app, org,
// network, host, region, state, process group). Names are few (they grow with the
// fleet's apps and hosts, not its machines); they are kept.
func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.strs[s]; ok {
		return v
	}
	in.strs[s] = s
	return s
}

func (in *interner) internPlace(p *MachinePlace) *MachinePlace {
	if p == nil {
		p = &MachinePlace{}
	}
	return in.places.get(p, func(p *MachinePlace) *MachinePlace {
		return &MachinePlace{App: in.str(p.App), Org: in.str(p.Org), Network: in.str(p.Network), NetworkID: p.NetworkID,
			Host: in.str(p.Host), HostID: p.HostID, Region: in.str(p.Region)}
	})
}

func attrsHash(seed maphash.Seed, a *MachineAttrs) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(a.State)
	h.WriteByte(0)
	h.WriteString(a.ProcessGroup)
	h.WriteByte(0)
	h.WriteString(a.Source)
	h.WriteByte(0)
	h.WriteString(a.Ifname)
	h.WriteByte(0)
	h.WriteString(a.CNINetwork)
	h.WriteByte(0)
	for _, s := range a.Services {
		h.WriteString(s.Name)
		h.WriteByte(0)
		h.WriteString(s.Proto)
		h.WriteByte(byte(s.Port))
		h.WriteByte(byte(s.Port >> 8))
	}
	// Map order is random: combine the pairs' hashes order-independently.
	var mix uint64
	var ph maphash.Hash
	ph.SetSeed(seed)
	for k, v := range a.Metadata {
		ph.Reset()
		ph.WriteString(k)
		ph.WriteByte(0)
		ph.WriteString(v)
		mix += ph.Sum64()
	}
	var b [9]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(mix >> (8 * i))
	}
	b[8] = byte(len(a.Metadata))
	h.Write(b[:])
	h.WriteString(a.Health)
	h.WriteByte(byte(len(a.Checks)))
	return h.Sum64()
}

func attrsEqual(a, b *MachineAttrs) bool {
	return a.State == b.State && a.ProcessGroup == b.ProcessGroup &&
		a.Source == b.Source && a.Ifname == b.Ifname && a.CNINetwork == b.CNINetwork &&
		slices.Equal(a.Services, b.Services) && maps.Equal(a.Metadata, b.Metadata) &&
		(a.Metadata == nil) == (b.Metadata == nil) && (a.Services == nil) == (b.Services == nil) &&
		a.Health == b.Health && checksEqual(a.Checks, b.Checks) && (a.Checks == nil) == (b.Checks == nil)
}

func checksEqual(a, b []Check) bool {
	return slices.EqualFunc(a, b, func(x, y Check) bool {
		if (x.CheckedAt == nil) != (y.CheckedAt == nil) || x.CheckedAt != nil && !x.CheckedAt.Equal(*y.CheckedAt) {
			return false
		}
		x.CheckedAt, y.CheckedAt = nil, nil
		return x == y
	})
}

func (in *interner) internAttrs(a *MachineAttrs) *MachineAttrs {
	if a == nil {
		a = &MachineAttrs{}
	}
	return in.attrs.get(a, func(a *MachineAttrs) *MachineAttrs {
		cp := &MachineAttrs{State: in.str(a.State), ProcessGroup: in.str(a.ProcessGroup),
			Source: in.str(a.Source), Ifname: in.str(a.Ifname), CNINetwork: in.str(a.CNINetwork), Health: in.str(a.Health)}
		if a.Checks != nil {
			cp.Checks = slices.Clip(slices.Clone(a.Checks))
		}
		if a.Metadata != nil {
			cp.Metadata = maps.Clone(a.Metadata)
		}
		if a.Services != nil {
			cp.Services = slices.Clip(slices.Clone(a.Services))
		}
		return cp
	})
}

// appMachines are one app's machines as the catalog indexes them: the sorted slice
// the last snapshot published (shared with it, so never modified) and the changes
// since. A snapshot merges the changes into a new slice; nothing is kept per machine
// but the slice entry.
type appMachines struct {
	cur     []*Machine
	pending []change // in order of arrival
}

// change is a pending change to an app's machines: m replaces the machine with id
// (nil: removes it).
type change struct {
	id string
	m  *Machine
}

func (a *appMachines) put(id string, m *Machine) { a.pending = append(a.pending, change{id, m}) }

// flush merges the pending changes into a new sorted slice and returns it.
func (a *appMachines) flush() []*Machine {
	if len(a.pending) == 0 {
		return a.cur
	}
	// Sorted by id, the last change to an id last: that one counts.
	ch := a.pending
	sort.SliceStable(ch, func(i, j int) bool { return ch[i].id < ch[j].id })
	out := make([]*Machine, 0, len(a.cur)+len(ch))
	i := 0
	for k, c := range ch {
		if k+1 < len(ch) && ch[k+1].id == c.id {
			continue
		}
		for i < len(a.cur) && a.cur[i].ID < c.id {
			out = append(out, a.cur[i])
			i++
		}
		if i < len(a.cur) && a.cur[i].ID == c.id {
			i++ // replaced or removed
		}
		if c.m != nil {
			out = append(out, c.m)
		}
	}
	out = append(out, a.cur[i:]...)
	if len(out) == 0 {
		out = nil
	} else if cap(out)-len(out) > len(out)/8 {
		out = slices.Clip(slices.Clone(out))
	}
	a.cur, a.pending = out, nil
	return out
}

// machineTable returns the bucket table holding a machine id.
func (c *Catalog) machineTable(key string) (int, *mtable) {
	b := record.Bucket(ID{Kind: KindMachine, Key: key})
	return b, &c.machines[b]
}

// applyMachineLocked is applyLocked for machine records.
func (c *Catalog) applyMachineLocked(r *Record) bool {
	b, tab := c.machineTable(r.Key)
	old := tab.get(c.intern.seed, r.Key)
	if old == nil && c.collected(r) {
		return false
	}
	var win bool
	if old == nil {
		win = true
	} else {
		o := old.header().Record()
		win = r.Wins(o)
		if old.live() && !r.Deleted && !o.SameIdentity(r) {
			if win {
				c.conflicts.add(r, old.record())
			} else {
				c.conflicts.add(old.record(), r)
			}
		}
	}
	if !win {
		return false
	}
	if old != nil {
		c.buckets[b] ^= old.header().Hash()
		c.unindexMachine(old)
		c.forgetRequest(old) // indexMachine puts the new version back under its id
		c.releaseEntry(old)
	}
	e := c.newEntry(r)
	tab.put(c.intern.seed, e)
	c.buckets[b] ^= e.header().Hash()
	c.indexMachine(e)
	c.seq++
	return true
}

func (c *Catalog) indexMachine(e *mentry) {
	m := &e.m
	if m.RequestID != "" && !e.bodyless {
		c.machineReqs.put(c.intern.seed, e)
	}
	if e.bodyless {
		return
	}
	if m.HostID == c.selfID {
		c.selfFields[m.Field] = struct{}{}
	}
	if !e.deleted {
		n := c.net(m.NetworkID)
		am := n.machines[m.App]
		if am == nil {
			am = &appMachines{}
			n.machines[m.App] = am
		}
		am.put(m.ID, m)
		n.hostCounts[m.HostID]++
		if m.Host == c.self {
			c.localM[m.ID] = m
		}
	}
	c.dirtyNets[m.NetworkID] = struct{}{}
	c.dirtyApps[m.App] = struct{}{}
	if m.Host == c.self {
		c.dirtyLocal = true
	}
}

func (c *Catalog) unindexMachine(e *mentry) {
	if e.deleted || e.bodyless {
		return
	}
	m := &e.m
	if n := c.nets[m.NetworkID]; n != nil {
		if am := n.machines[m.App]; am != nil {
			am.put(m.ID, nil)
		}
		decr(n.hostCounts, m.HostID)
	}
	delete(c.localM, m.ID)
	c.dirtyNets[m.NetworkID] = struct{}{}
	c.dirtyApps[m.App] = struct{}{}
	if m.Host == c.self {
		c.dirtyLocal = true
	}
}

// dropMachineLocked removes a machine record from its table, the digest and the
// uniqueness indexes (unindexMachine is the caller's business).
func (c *Catalog) dropMachineLocked(b int, e *mentry) {
	c.buckets[b] ^= e.header().Hash()
	c.machines[b].del(c.intern.seed, e.m.ID)
	c.forgetRequest(e)
	if !e.bodyless {
		if e.m.HostID == c.selfID {
			delete(c.selfFields, e.m.Field)
		}
	}
	c.releaseEntry(e)
	c.seq++
}

// forgetRequest drops e from the request id index if it is what the index holds.
func (c *Catalog) forgetRequest(e *mentry) {
	if rid := e.m.RequestID; rid != "" && !e.bodyless && c.machineReqs.get(c.intern.seed, rid) == e {
		c.machineReqs.del(c.intern.seed, rid)
	}
}
