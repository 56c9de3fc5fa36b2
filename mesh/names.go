package mesh

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/claim"
)

// names writes records under names that must be unique in the cluster; it implements
// Namer. The name is first reserved with a majority of its arbiter hosts, so of two
// concurrent creates of one name at most one is written, and the other caller gets an
// error instead of a silent success.
//
// Concurrency: mu serializes this host's check of a name with its write, and is never
// held across the claim, which waits on the network.
type names struct {
	r        Reader
	w        Writer
	arbiters arbiters
	log      *slog.Logger
	mu       sync.Mutex
}

// arbiters reserve names (*claim.Claimer).
type arbiters interface {
	Claim(ctx context.Context, r *catalog.Record) error
	// Written tells the arbiters a claimed record was written (bounded by ctx).
	Written(ctx context.Context, r *catalog.Record)
}

// CreateNamed writes a new record under a name that must be unique.
func (nm *names) CreateNamed(ctx context.Context, build func() *catalog.Record, id catalog.ID, what string) (*catalog.Record, error) {
	exists := func(cur *catalog.Record, _ uint32) error {
		if cur != nil && !cur.Deleted {
			return conflict("%s already exists", what)
		}
		return nil
	}
	return nm.WriteNamed(ctx, NamedWrite{ID: id, What: what, Build: build, Taken: exists, Raced: exists,
		Lost: what + " was created concurrently on another host, which won"})
}

// WriteNamed takes the name's next generation, claims it with the name's arbiters,
// writes it and reports whether the cluster kept it.
func (nm *names) WriteNamed(ctx context.Context, w NamedWrite) (*catalog.Record, error) {
	if err := nm.w.Writable(); err != nil {
		return nil, err
	}
	nm.mu.Lock()
	cur := nm.r.Get(w.ID)
	gen := uint32(1)
	if cur != nil {
		gen = cur.Gen + 1
	}
	if err := w.Taken(cur, gen); err != nil {
		nm.mu.Unlock()
		return nil, err
	}
	stamp := nm.r.Tick()
	r := w.Build()
	r.Gen, r.Created, r.Version = gen, stamp, stamp
	nm.mu.Unlock()
	if err := nm.claim(ctx, r, w.What); err != nil {
		return nil, err
	}
	nm.mu.Lock()
	if err := w.Raced(nm.r.Get(w.ID), gen); err != nil {
		nm.mu.Unlock()
		return nil, err
	}
	err := nm.w.Record(r)
	nm.mu.Unlock()
	nm.w.Flush()
	if err != nil {
		return nil, err
	}
	nm.arbiters.Written(ctx, r)
	if got := nm.r.Get(w.ID); got == nil || !got.SameIdentity(r) {
		return nil, conflict("%s", w.Lost)
	}
	return r, nil
}

// Reclaim reserves r's unique values again and commits r.
func (nm *names) Reclaim(ctx context.Context, r *catalog.Record, what string) error {
	if err := nm.claim(ctx, r, what); err != nil {
		return err
	}
	if err := nm.w.Commit(r); err != nil {
		return err
	}
	nm.arbiters.Written(ctx, r)
	return nil
}

// claim reserves r's unique names with their arbiters (no lock held: it waits on
// the network).
func (nm *names) claim(ctx context.Context, r *catalog.Record, what string) error {
	err := nm.arbiters.Claim(ctx, r)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, claim.ErrConflict):
		return conflict("%s already exists: created concurrently on another host (%v)", what, err)
	case errors.Is(err, claim.ErrNoQuorum):
		// Partitioned from most arbiters: write anyway, as the cluster always has;
		// the merge order resolves a concurrent create on the other side on heal.
		nm.log.Warn("named create without a majority of arbiters", "what", what, "err", err)
		return nil
	}
	return err
}
