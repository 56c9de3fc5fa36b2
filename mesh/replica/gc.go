package replica

import (
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Restore loads the data file into the catalog at start, then makes sure nothing it
// loaded can resurrect a deleted object: a host whose identity (name, hostID) is
// known and whose last contact with its cluster is older than the away limit forgets
// what other hosts wrote, and tombstones already past the horizon are collected.
// Call it once, before the host joins.
func (r *Replica) Restore(name string, hostID uint32, known bool) error {
	if err := r.load(); err != nil {
		return err
	}
	if known {
		if err := r.forgetIfAway(name, hostID); err != nil {
			return err
		}
	}
	r.cat.SetHorizon(func() time.Time { return r.clock.Now().Add(-r.cfg.TTL) })
	return r.disk.Delete(r.cat.Collect()...)
}

// load applies the stored records batch by batch (the catalog keeps records far more
// compactly than decoded ones, so holding them all decoded at once would be most of
// the start's peak memory), decoding the next batch while the catalog applies one:
// with a million records that halves the start. Batches arrive in key order, so the
// result does not depend on timing.
func (r *Replica) load() error {
	batches := make(chan []*catalog.Record, 1)
	done := make(chan error, 1)
	go func() {
		done <- r.disk.LoadEach(100_000, func(rs []*catalog.Record) { batches <- rs })
		close(batches)
	}()
	for rs := range batches {
		r.cat.ApplyAll(rs)
	}
	return <-done
}

// awayLimit is how long a host may be out of touch before it no longer trusts what
// other hosts wrote in its catalog. It is below the TTL: anything deleted after the
// host lost touch is collected elsewhere no earlier than TTL after that, so a host
// that forgets at 7/8 of the TTL (checked every TTL/16) never holds an object whose
// tombstone is already gone when it reconnects.
func awayLimit(ttl time.Duration) time.Duration { return ttl / 8 * 7 }

// gcInterval is how often the collector runs: TTL/16, between 100 ms and a minute.
func gcInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/16, 100*time.Millisecond), time.Minute)
}

// forgetIfAway runs at start: a host whose last contact with its cluster is older
// than the away limit may hold objects that were deleted and whose tombstones were
// collected meanwhile. Pushing them would resurrect them, so it forgets everything
// other hosts wrote and catches up from the cluster.
func (r *Replica) forgetIfAway(name string, hostID uint32) error {
	at, ok, err := r.disk.AliveAt()
	if err != nil || !ok {
		return err
	}
	away := r.clock.Now().Sub(at)
	if away <= awayLimit(r.cfg.TTL) {
		return nil
	}
	return r.forgetOthers(name, hostID, away)
}

// forgetOthers drops what other hosts wrote. It keeps this host's machines and peers
// (only it writes those, and a removal or re-image shows in host records, which are
// never collected), and host and network records.
func (r *Replica) forgetOthers(name string, hostID uint32, away time.Duration) error {
	ids := r.cat.Forget(func(rec *catalog.Record) bool { return keep(rec, name, hostID) })
	r.log.Warn("out of touch with the cluster longer than the tombstone horizon allows: forgot what other hosts wrote, catching up from the cluster",
		"away", away.Round(time.Second), "tombstone_ttl", r.cfg.TTL, "forgotten", len(ids))
	return r.disk.Delete(ids...)
}

// keep reports whether a host that forgets what others wrote keeps rec.
func keep(rec *catalog.Record, name string, hostID uint32) bool {
	switch {
	case !catalog.Collectable(rec.Kind):
		return true
	case rec.Machine != nil:
		return rec.Machine.Host == name && rec.Machine.HostID == hostID
	case rec.Peer != nil:
		return rec.Peer.Gateway == name && rec.Peer.GatewayID == hostID
	}
	return false
}

// SaveContact records now as the last time this host was in touch with its cluster,
// if it is; a restart compares it with the tombstone horizon. Call it before the
// transport closes (after that, nobody is in touch).
func (r *Replica) SaveContact() error {
	if !r.cfg.Cluster.InTouch() {
		return nil
	}
	return r.disk.SaveAliveAt(r.clock.Now())
}

// StartGC runs the collector; start it once the host's identity stands.
func (r *Replica) StartGC() {
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.gcLoop() }()
}

// gcLoop collects tombstones past the horizon, records that the host is in touch with
// its cluster, and forgets other hosts' records if it has been cut off for too long
// (a partition, not a restart).
func (r *Replica) gcLoop() {
	every := gcInterval(r.cfg.TTL)
	lastContact := r.clock.Now()
	for {
		t := r.clock.NewTimer(every)
		select {
		case <-r.stop:
			t.Stop()
			return
		case <-t.C():
		}
		lastContact = r.collect(lastContact)
	}
}

// collect is one round of the collector; it returns the last contact time.
func (r *Replica) collect(lastContact time.Time) time.Time {
	now := r.clock.Now()
	if r.cfg.Cluster.InTouch() {
		lastContact = now
		if err := r.disk.SaveAliveAt(now); err != nil {
			r.log.Error("record contact time", "err", err)
		}
	} else if away := now.Sub(lastContact); away > awayLimit(r.cfg.TTL) {
		name, hostID := r.cfg.Cluster.Self()
		if err := r.forgetOthers(name, hostID, away); err != nil {
			r.log.Error("forget records", "err", err)
		}
		lastContact = now // once per isolation
	}
	if ids := r.cat.Collect(); len(ids) > 0 {
		if err := r.disk.Delete(ids...); err != nil {
			r.log.Error("delete collected tombstones", "err", err)
		}
		if c := r.cfg.Metrics.Collected; c != nil {
			c.Add(float64(len(ids)))
		}
	}
	return lastContact
}
