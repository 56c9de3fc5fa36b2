package claim

import (
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/record"
)

// arbiter is one host's grant table: which claimant holds each name it arbitrates.
type arbiter struct {
	cat Reader
	now func() time.Time

	mu     sync.Mutex
	grants map[string]grant
}

type grant struct {
	holder  claimant
	id      record.ID
	expires time.Time
}

// maxGrants is the table size from which expired grants are swept.
const maxGrants = 4096

func newArbiter(cat Reader, now func() time.Time) *arbiter {
	return &arbiter{cat: cat, now: now, grants: map[string]grant{}}
}

// arbitrate decides one claim on this host.
func (a *arbiter) arbitrate(req claimRequest) claimReply {
	if req.Record == nil || req.Record.Validate() != nil || len(req.Keys) != 1 {
		return claimReply{}
	}
	r := req.Record
	id := r.ID()
	// A live record with another identity already has the name (and the claim is
	// not a new generation replacing it, as an ALIAS switch is): refuse, and hand it
	// over so the claimant learns of it.
	var existing []*record.Record
	if cur := a.cat.Get(id); cur != nil && !cur.Deleted && !cur.SameIdentity(r) && cur.Gen >= r.Gen {
		existing = append(existing, cur)
	}
	if r.Network != nil {
		for _, k := range a.cat.NetworkIDClaims(r.Network.ID) {
			if o := a.cat.Live(record.ID{Kind: record.KindNetwork, Key: k}); o != nil && k != r.Key {
				existing = append(existing, o)
			}
		}
	}
	if len(existing) > 0 {
		return claimReply{Records: existing}
	}
	now := a.now()
	key := req.Keys[0]
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.grants[key]; ok && cur.holder != req.Holder && now.Before(cur.expires) && !a.released(cur) {
		h := cur.holder
		return claimReply{Holder: &h}
	}
	if len(a.grants) > maxGrants {
		for k, gr := range a.grants {
			if !now.Before(gr.expires) {
				delete(a.grants, k)
			}
		}
	}
	a.grants[key] = grant{holder: req.Holder, id: id, expires: now.Add(grantTTL)}
	return claimReply{Granted: true}
}

// released reports whether a grant has done its work: the catalog holds its record
// (or a later generation, or its tombstone), which protects the name from here on.
func (a *arbiter) released(gr grant) bool {
	cur := a.cat.Get(gr.id)
	return cur != nil && cur.Gen >= gr.holder.Gen
}

// release drops a grant its holder gives back; a grant of another holder stays.
func (a *arbiter) release(req claimRequest) {
	if len(req.Keys) != 1 {
		return
	}
	a.mu.Lock()
	if cur, ok := a.grants[req.Keys[0]]; ok && cur.holder == req.Holder {
		delete(a.grants, req.Keys[0])
	}
	a.mu.Unlock()
}
