package catalog

import (
	"time"

	"github.com/dogwood/dogwood/mesh/record"
)

// Tombstone collection. A delete is a tombstone so a stale copy cannot resurrect the
// object; once every host has had the horizon (--tombstone-ttl) to hear of it, the
// tombstone is dropped and the catalog's size follows the live records. Hosts never
// accept a tombstone that is already past the horizon for a record they do not hold,
// so collected tombstones do not come back through anti-entropy. What a host that was
// away longer than the horizon must do is the node's business (it forgets what others
// wrote and catches up; see mesh).
//
// Host and network tombstones are kept: their ids are never reused, and a removed
// host's tombstone is what refuses it if it returns.

// SetHorizon sets the function that returns the collection horizon (now minus the
// TTL). Set it before records arrive; nil never collects.
func (c *Catalog) SetHorizon(f func() time.Time) {
	c.mu.Lock()
	c.horizon = f
	c.mu.Unlock()
}

// Collectable reports whether tombstones of kind k are collected.
func Collectable(k Kind) bool { return k != KindHost && k != KindNetwork }

// collected reports whether r is a tombstone past the horizon. Callers hold mu.
func (c *Catalog) collected(r *Record) bool {
	return c.horizon != nil && Collectable(r.Kind) && pastHorizon(r.Deleted, r.DeletedAt, c.horizon().Unix())
}

// pastHorizon is the one expiry rule for tombstones, whole records and machine
// entries alike: deleted at a known time before cut (unix seconds).
func pastHorizon(deleted bool, deletedAt, cut int64) bool {
	return deleted && deletedAt != 0 && deletedAt < cut
}

// Collect drops tombstones past the horizon and returns their ids (to delete from
// disk).
func (c *Catalog) Collect() []ID {
	c.mu.Lock()
	var out []ID
	for id, r := range c.records {
		if c.collected(r) {
			c.dropLocked(id, r)
			out = append(out, id)
		}
	}
	if c.horizon != nil {
		cut := c.horizon().Unix()
		// unindexMachine does nothing for tombstones, which is all this drops.
		out = c.dropMachinesWhere(func(e *mentry) bool { return pastHorizon(e.deleted, e.deletedAt, cut) }, out)
	}
	c.mu.Unlock()
	if len(out) > 0 {
		c.notify()
	}
	return out
}

// Forget drops every record for which keep is false, tombstones and live ones, and
// returns their ids. A host that was away longer than the horizon forgets what others
// wrote (it may hold objects whose tombstones were collected meanwhile) and receives
// the current catalog again from the cluster.
func (c *Catalog) Forget(keep func(*Record) bool) []ID {
	c.mu.Lock()
	var out []ID
	for id, r := range c.records {
		if !keep(r) {
			c.unindex(r)
			c.dropLocked(id, r)
			out = append(out, id)
		}
	}
	out = c.dropMachinesWhere(func(e *mentry) bool { return !keep(e.record()) }, out)
	c.mu.Unlock()
	if len(out) > 0 {
		c.notify()
	}
	return out
}

// dropLocked removes a record from the map, digests and uniqueness indexes. Live
// indexes are the caller's (unindex) business.
func (c *Catalog) dropLocked(id ID, r *Record) {
	b := record.Bucket(id)
	c.buckets[b] ^= r.Header().Hash()
	delete(c.byBucket[b], id)
	delete(c.records, id)
	if rid := requestID(r); rid != "" && c.requests[string(rune(r.Kind))+rid] == id {
		delete(c.requests, string(rune(r.Kind))+rid)
	}
	if live := c.byKind[r.Kind]; live != nil {
		delete(live, r.Key)
	}
	// Uniqueness indexes hold tombstones (host and network tombstones are never
	// collected, and Forget keeps this host's own; machines are dropMachineLocked's).
	if h := r.Host; h != nil {
		if s := c.hostIDs[h.ID]; s != nil {
			delete(s, h.Name)
			if len(s) == 0 {
				delete(c.hostIDs, h.ID)
			}
		}
	}
	if n := r.Network; n != nil {
		if s := c.networkIDs[n.ID]; s != nil {
			delete(s, r.Key)
			if len(s) == 0 {
				delete(c.networkIDs, n.ID)
			}
		}
	}
	c.seq++
}

// dropMachinesWhere drops the machine entries for which drop is true and appends
// their ids to out. Callers hold mu.
func (c *Catalog) dropMachinesWhere(drop func(*mentry) bool, out []ID) []ID {
	type found struct {
		b int
		e *mentry
	}
	var ds []found
	c.eachMachine(func(b int, e *mentry) {
		if drop(e) {
			ds = append(ds, found{b, e})
		}
	})
	for _, d := range ds {
		c.unindexMachine(d.e)
		c.dropMachineLocked(d.b, d.e)
		out = append(out, ID{Kind: KindMachine, Key: d.e.m.ID})
	}
	return out
}
