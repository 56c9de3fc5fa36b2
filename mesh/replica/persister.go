package replica

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/clock"
)

// persister owns putting other hosts' records on this host's disk: it collects the
// ids gossip applied, writes what the catalog holds for them in one synced
// transaction per window, and keeps whatever a failed write did not save pending,
// retrying with a backoff until the disk has caught up. It reports how far behind the
// disk is (for readiness and doctor). It does not decide what is applied (the catalog
// does) and it never writes this host's own records first (Record does, before
// acknowledging them; it only rewrites one whose apply lost).
type persister struct {
	put     func(...*catalog.Record) error
	records func([]catalog.ID) []*catalog.Record
	log     *slog.Logger
	clock   clock.Clock

	sig     chan struct{}
	mu      sync.Mutex
	pending map[catalog.ID]struct{}
	err     error     // the last write's failure; nil once a write succeeded
	since   time.Time // when the disk fell behind
}

func newPersister(put func(...*catalog.Record) error, records func([]catalog.ID) []*catalog.Record, log *slog.Logger, c clock.Clock) *persister {
	return &persister{put: put, records: records, log: log, clock: c,
		sig: make(chan struct{}, 1), pending: map[catalog.ID]struct{}{}}
}

// add queues records for the next write. It never blocks (gossip calls it from
// memberlist callbacks): ids go into a set the writer takes whole, so memory is
// bounded by the catalog and a burst costs one transaction.
func (w *persister) add(rs []*catalog.Record) {
	w.mu.Lock()
	for _, r := range rs {
		w.pending[r.ID()] = struct{}{}
	}
	w.mu.Unlock()
	select {
	case w.sig <- struct{}{}:
	default:
	}
}

func (w *persister) take() []catalog.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	ids := make([]catalog.ID, 0, len(w.pending))
	for id := range w.pending {
		ids = append(ids, id)
	}
	clear(w.pending)
	return ids
}

// write saves what the catalog holds now for the pending ids (so a batch never puts
// a stale version over a newer one). On failure the ids stay pending.
func (w *persister) write() error {
	ids := w.take()
	if len(ids) == 0 {
		return nil
	}
	err := w.put(w.records(ids)...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		for _, id := range ids {
			w.pending[id] = struct{}{}
		}
		if w.err == nil {
			w.since = w.clock.Now()
		}
		w.err = err
		w.log.Error("persist records from other hosts: kept pending, will retry", "err", err, "records", len(w.pending))
		return fmt.Errorf("persist %d records from other hosts: %w", len(ids), err)
	}
	if w.err != nil {
		w.log.Info("records from other hosts on disk again", "behind_for", w.clock.Now().Sub(w.since).Round(time.Millisecond))
	}
	w.err = nil
	return nil
}

// behind reports whether the disk holds less than memory: nil when the last write
// succeeded.
func (w *persister) behind() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		return nil
	}
	return fmt.Errorf("%d records from other hosts not on disk since %s: %w", len(w.pending), w.since.UTC().Format(time.RFC3339), w.err)
}

// maxRetry caps the backoff between retries of a failed write.
const maxRetry = 5 * time.Second

// run writes a batch window after each signal, and after a failure retries with a
// backoff from window up to maxRetry even if nothing new arrives.
func (w *persister) run(stop <-chan struct{}, window time.Duration) {
	var retry time.Duration // 0: nothing failed
	for {
		var again clock.Timer
		var againC <-chan time.Time
		if retry > 0 {
			again = w.clock.NewTimer(retry)
			againC = again.C()
		}
		select {
		case <-w.sig:
		case <-againC:
		case <-stop:
			return
		}
		if again != nil {
			again.Stop()
		}
		if !clock.Sleep(w.clock, window, stop) {
			return
		}
		if w.write() != nil {
			retry = min(max(2*retry, window), maxRetry)
		} else {
			retry = 0
		}
	}
}
