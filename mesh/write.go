package mesh

import (
	"context"
	"errors"
	"time"

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
	return n.writeNamed(ctx, namedWrite{id: id, what: what, build: build, taken: exists, raced: exists,
		lost: what + " was created concurrently on another host, which won"})
}

// namedWrite is one write under a name that arbiters guard: a create, or an alias
// switched to a new target.
type namedWrite struct {
	id    catalog.ID
	what  string
	build func() *catalog.Record
	// taken refuses the write before the claim, raced after it (a write of the name
	// on this host meanwhile); gen is the generation this write takes.
	taken, raced func(cur *catalog.Record, gen uint32) error
	// lost is the error when another host's write of the name won.
	lost string
}

// writeNamed takes the name's next generation, claims it with the name's arbiters,
// writes it and reports whether the cluster kept it.
func (n *Node) writeNamed(ctx context.Context, w namedWrite) (*catalog.Record, error) {
	if err := n.writable(); err != nil {
		return nil, err
	}
	n.createMu.Lock()
	cur := n.cat.Get(w.id)
	gen := uint32(1)
	if cur != nil {
		gen = cur.Gen + 1
	}
	if err := w.taken(cur, gen); err != nil {
		n.createMu.Unlock()
		return nil, err
	}
	stamp := n.cat.Tick()
	r := w.build()
	r.Gen, r.Created, r.Version = gen, stamp, stamp
	n.createMu.Unlock()
	if err := n.claim(ctx, r, w.what); err != nil {
		return nil, err
	}
	n.createMu.Lock()
	if err := w.raced(n.cat.Get(w.id), gen); err != nil {
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
	if got := n.cat.Get(w.id); got == nil || !got.SameIdentity(r) {
		return nil, conflict("%s", w.lost)
	}
	return r, nil
}

// tombstone writes deletions for the given live records.
func (n *Node) tombstone(rs ...*catalog.Record) error { return n.commit(n.tombstones(rs...)...) }

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

// waitFor polls the local catalog until cond holds for id or ctx ends (bounded at 2s).
func (n *Node) waitFor(ctx context.Context, id catalog.ID, cond func(*catalog.Record) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ch, stop := n.cat.Watch()
	defer stop()
	for {
		if r := n.cat.Get(id); r != nil && cond(r) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
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
