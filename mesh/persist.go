package mesh

import (
	"fmt"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Local writes go in two steps so that no lock is held across network I/O:
//   - record makes them durable (synced to disk) and visible in the catalog; callers
//     may hold createMu or allocMu, which is what makes "check, allocate, record"
//     atomic;
//   - flush publishes what was recorded; callers run it after releasing their locks.
// The durability guarantee rests on the order: on disk before anyone is told.

// record persists and applies local writes and queues them for publishing. Until the
// host has heard from its cluster since it started, it refuses: a host that was
// removed (or re-imaged elsewhere) while it was down cannot know it before then, and
// what it acknowledged meanwhile would be lost when it learns it.
func (n *Node) record(rs ...*catalog.Record) error {
	if err := n.writable(); err != nil {
		return err
	}
	return n.recordAny(rs...)
}

// writable refuses writes until the host has heard from its cluster since it
// started. Operations that reserve something elsewhere first (a name with its
// arbiters) check it before, so a refused write leaves nothing behind.
func (n *Node) writable() error {
	if !n.confirmed.Load() {
		return unavailable("host %q has not reached its cluster since it started, so it cannot confirm it still belongs to it; retry once it has (check `dogwood members` and the underlay)", n.id.Name)
	}
	return nil
}

// recordAny is record without the membership check: for this host's own record and
// for retiring records when its identity changes.
func (n *Node) recordAny(rs ...*catalog.Record) error {
	for _, r := range rs {
		if r.Deleted {
			continue
		}
		if err := n.cfg.Limits.CheckRecord(r); err != nil {
			return overLimit(err)
		}
	}
	if err := n.store.Put(rs...); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	var lost []*catalog.Record
	for _, r := range rs {
		if !n.cat.Apply(r) {
			lost = append(lost, r)
		}
	}
	if len(lost) > 0 {
		// Something newer arrived between our write and our apply; make sure disk
		// ends with the winner, not with our record.
		n.persistAsync(lost)
	}
	n.outMu.Lock()
	n.outbox = append(n.outbox, rs...)
	n.outMu.Unlock()
	n.metrics.writes.Add(float64(len(rs)))
	return nil
}

// flush publishes every recorded write not yet sent. Call it without locks held.
func (n *Node) flush() {
	n.outMu.Lock()
	rs := n.outbox
	n.outbox = nil
	n.outMu.Unlock()
	if len(rs) > 0 {
		n.gossip.Publish(rs...)
	}
}

// commit records and publishes; for callers that hold no lock.
func (n *Node) commit(rs ...*catalog.Record) error {
	err := n.record(rs...)
	n.flush()
	return err
}

// persistWindow is how long the writer lets remote records gather before it writes
// them in one transaction. Each transaction is an fsync: at 100 changes/s
// fleet-wide every host would otherwise sync up to 100 times a second, and 500
// agents in one benchmark spent 16 % of their CPU on a transaction per change each.
// A crash loses at most this window of remote records, which anti-entropy brings
// back; Close writes what is pending.
const persistWindow = 100 * time.Millisecond

// persistAsync queues records from other hosts for the batching writer (it never
// blocks: gossip calls it from memberlist callbacks).
func (n *Node) persistAsync(rs []*catalog.Record) { n.remote.add(rs) }
