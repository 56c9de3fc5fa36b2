package replica

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/clock"
)

// Durable is what the replica needs of the data file (*store.Store). Put and Delete
// are synced before they return.
type Durable interface {
	Put(rs ...*catalog.Record) error
	Delete(ids ...catalog.ID) error
	// AliveAt is when this host last knew itself in touch with its cluster.
	AliveAt() (t time.Time, ok bool, err error)
	SaveAliveAt(t time.Time) error
	// LoadEach calls f with the stored records, batch by batch, in key order.
	LoadEach(batch int, f func([]*catalog.Record)) error
}

// Publisher sends this host's records to the cluster (gossip.Publish). It is called
// with no lock held and may block on the network.
type Publisher interface {
	Publish(rs ...*catalog.Record)
}

// PublishFunc adapts a function to Publisher.
type PublishFunc func(rs ...*catalog.Record)

// Publish calls f.
func (f PublishFunc) Publish(rs ...*catalog.Record) { f(rs...) }

// Gate says whether this host may write now (mesh's admission: not until it has heard
// from its cluster since it started). It must not block.
type Gate interface {
	Writable() error
}

// Cluster is what collection needs to know of this host's place in its cluster. It
// must not block.
type Cluster interface {
	// InTouch reports whether this host hears from its cluster now.
	InTouch() bool
	// Self is this host's name and host id now: records only it writes are never
	// forgotten.
	Self() (name string, hostID uint32)
}

// Metrics are the counters the replica keeps; nil ones are not counted.
type Metrics struct {
	Writes    prometheus.Counter     // records this host wrote
	Collected prometheus.Counter     // tombstones dropped after the TTL
	Conflicts *prometheus.CounterVec // conflicts resolved, by record kind
}

// Config is what a replica is built from. Catalog, Durable, Publisher, Gate and
// Cluster are required.
type Config struct {
	Catalog   *catalog.Catalog
	Durable   Durable
	Publisher Publisher
	Gate      Gate
	Cluster   Cluster
	// Check refuses a record over a limit, with the error a write returns; nil admits
	// everything. Tombstones are never checked.
	Check func(*catalog.Record) error
	Clock clock.Clock
	Log   *slog.Logger
	// TTL is how long tombstones are kept.
	TTL time.Duration
	// Window is how long the persister lets remote records gather (default Window).
	Window  time.Duration
	Metrics Metrics
}

// Window is how long the persister lets remote records gather before it writes them
// in one transaction. Each transaction is an fsync: at 100 changes/s fleet-wide every
// host would otherwise sync up to 100 times a second, and 500 agents in one benchmark
// spent 16 % of their CPU on a transaction per change each. A crash loses at most
// this window of remote records, which anti-entropy brings back; Close writes what is
// pending.
const Window = 500 * time.Millisecond

// Replica is the write path. Build it with New, call Start once the Publisher can
// publish, StartGC once the host's identity stands, and Close last.
type Replica struct {
	cfg   Config
	cat   *catalog.Catalog
	disk  Durable
	log   *slog.Logger
	clock clock.Clock

	outMu  sync.Mutex
	outbox []*catalog.Record // recorded local writes not yet published

	persist   *persister
	conflicts conflictLog

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New builds a replica; nothing runs until Start.
func New(cfg Config) *Replica {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Window <= 0 {
		cfg.Window = Window
	}
	r := &Replica{cfg: cfg, cat: cfg.Catalog, disk: cfg.Durable, log: cfg.Log, clock: cfg.Clock, stop: make(chan struct{})}
	r.persist = newPersister(cfg.Durable.Put, cfg.Catalog.Records, cfg.Log.With("component", "persist"), cfg.Clock)
	r.conflicts = conflictLog{r: r}
	cfg.Catalog.OnConflict(r.conflicts.report)
	return r
}

// Start runs the persister.
func (r *Replica) Start() {
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.persist.run(r.stop, r.cfg.Window) }()
}

// Close stops the loops and writes what the persister still holds; it reports that
// write's failure. Call it before closing the data file.
func (r *Replica) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		r.wg.Wait()
		err = r.persist.write()
	})
	return err
}

// Writable is nil when this host may write now. An operation that reserves something
// elsewhere first (a name with its arbiters) checks it before, so a refused write
// leaves nothing behind.
func (r *Replica) Writable() error { return r.cfg.Gate.Writable() }

// Record makes rs durable and visible and queues them for publication. Until the host
// has heard from its cluster since it started, it refuses: a host that was removed
// (or re-imaged elsewhere) while it was down cannot know it before then, and what it
// acknowledged meanwhile would be lost when it learns it.
func (r *Replica) Record(rs ...*catalog.Record) error {
	if err := r.Writable(); err != nil {
		return err
	}
	return r.RecordAny(rs...)
}

// RecordAny is Record without the gate: for the host's own record and for retiring
// records when its identity changes, which admission writes before it opens the gate.
func (r *Replica) RecordAny(rs ...*catalog.Record) error {
	for _, rec := range rs {
		if err := r.Admit(rec); err != nil {
			return err
		}
	}
	// The order is the guarantee: on disk before visible, visible before published.
	if err := r.disk.Put(rs...); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	var lost []*catalog.Record
	for _, rec := range rs {
		if !r.cat.Apply(rec) {
			lost = append(lost, rec)
		}
	}
	if len(lost) > 0 {
		// Something newer arrived between our write and our apply; make sure the disk
		// ends with the winner, not with our record.
		r.persist.add(lost)
	}
	r.outMu.Lock()
	r.outbox = append(r.outbox, rs...)
	r.outMu.Unlock()
	if c := r.cfg.Metrics.Writes; c != nil {
		c.Add(float64(len(rs)))
	}
	return nil
}

// Admit is nil when rec is within the limits (tombstones always are).
func (r *Replica) Admit(rec *catalog.Record) error {
	if rec.Deleted || r.cfg.Check == nil {
		return nil
	}
	return r.cfg.Check(rec)
}

// Flush publishes every recorded write not yet sent. Call it with no lock held.
func (r *Replica) Flush() {
	r.outMu.Lock()
	rs := r.outbox
	r.outbox = nil
	r.outMu.Unlock()
	if len(rs) > 0 {
		r.cfg.Publisher.Publish(rs...)
	}
}

// Commit records and publishes; for callers that hold no lock.
func (r *Replica) Commit(rs ...*catalog.Record) error {
	err := r.Record(rs...)
	r.Flush()
	return err
}

// Tombstones builds (does not record) deletions of the given live records.
func (r *Replica) Tombstones(rs ...*catalog.Record) []*catalog.Record {
	out := make([]*catalog.Record, 0, len(rs))
	now := r.clock.Now().Unix()
	for _, rec := range rs {
		t := *rec
		t.Deleted = true
		t.Version = r.cat.Tick()
		t.DeletedAt = now
		out = append(out, &t)
	}
	return out
}

// Merge applies records other hosts wrote and queues what changed for the persister;
// it returns what changed. It never blocks on the disk: gossip calls it from
// memberlist callbacks. Limits are the caller's to check first (Admit), so it can
// count what it drops.
func (r *Replica) Merge(rs []*catalog.Record) []*catalog.Record {
	changed := r.cat.ApplyAll(rs)
	if len(changed) > 0 {
		r.persist.add(changed)
	}
	return changed
}

// Behind is nil unless records from other hosts that this host applied are not yet
// on its disk because writing them failed (they are retried).
func (r *Replica) Behind() error { return r.persist.behind() }

// SetStatus records what membership says about a host (in memory: statuses are not
// persisted); it reports whether the status changed. It never blocks.
func (r *Replica) SetStatus(name, status string) bool { return r.cat.SetStatus(name, status) }
