package mesh

import (
	"context"
	"errors"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/claim"
)

// createNamed writes a new record under a name that must be unique. The name is
// first reserved with a majority of its arbiter hosts (claim.Claimer.Claim), so of two
// concurrent creates of one name at most one is written, and the other caller gets
// an error instead of a silent success.
func (n *Node) createNamed(ctx context.Context, build func() *catalog.Record, id catalog.ID, what string) (*catalog.Record, error) {
	exists := func(cur *catalog.Record, _ uint32) error {
		if cur != nil && !cur.Deleted {
			return conflict("%s already exists", what)
		}
		return nil
	}
	return n.writeNamed(ctx, NamedWrite{ID: id, What: what, Build: build, Taken: exists, Raced: exists,
		Lost: what + " was created concurrently on another host, which won"})
}

// writeNamed takes the name's next generation, claims it with the name's arbiters,
// writes it and reports whether the cluster kept it.
func (n *Node) writeNamed(ctx context.Context, w NamedWrite) (*catalog.Record, error) {
	if err := n.writable(); err != nil {
		return nil, err
	}
	n.createMu.Lock()
	cur := n.cat.Get(w.ID)
	gen := uint32(1)
	if cur != nil {
		gen = cur.Gen + 1
	}
	if err := w.Taken(cur, gen); err != nil {
		n.createMu.Unlock()
		return nil, err
	}
	stamp := n.cat.Tick()
	r := w.Build()
	r.Gen, r.Created, r.Version = gen, stamp, stamp
	n.createMu.Unlock()
	if err := n.claim(ctx, r, w.What); err != nil {
		return nil, err
	}
	n.createMu.Lock()
	if err := w.Raced(n.cat.Get(w.ID), gen); err != nil {
		n.createMu.Unlock()
		return nil, err
	}
	err := n.record(r)
	n.createMu.Unlock()
	n.flush()
	if err != nil {
		return nil, err
	}
	n.claims.Written(ctx, r)
	if got := n.cat.Get(w.ID); got == nil || !got.SameIdentity(r) {
		return nil, conflict("%s", w.Lost)
	}
	return r, nil
}

// tombstones builds deletions for the given live records.
func (n *Node) tombstones(rs ...*catalog.Record) []*catalog.Record {
	out := make([]*catalog.Record, 0, len(rs))
	for _, r := range rs {
		t := *r
		t.Deleted = true
		t.Version = n.cat.Tick()
		t.DeletedAt = n.now().Unix()
		out = append(out, &t)
	}
	return out
}

// claim reserves r's unique names with their arbiters (no lock held: it waits on
// the network).
func (n *Node) claim(ctx context.Context, r *catalog.Record, what string) error {
	err := n.claims.Claim(ctx, r)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, claim.ErrConflict):
		return conflict("%s already exists: created concurrently on another host (%v)", what, err)
	case errors.Is(err, claim.ErrNoQuorum):
		// Partitioned from most arbiters: write anyway, as the cluster always has;
		// the merge order resolves a concurrent create on the other side on heal.
		n.log.Warn("named create without a majority of arbiters", "what", what, "err", err)
		return nil
	}
	return err
}
