// Package replica owns this host's copy of the cluster state: it is the only writer
// of the catalog and of the data file. A local write goes through Record — checked
// against the limits, made durable (synced to disk), then visible (applied to the
// catalog), then queued for publication, which Flush hands to the Publisher. Records
// from other hosts come in through Merge: applied at once, written to disk by a
// batching persister that retries until the disk has caught up. It builds and
// collects tombstones, forgets what other hosts wrote when this host was out of touch
// longer than the tombstone horizon allows, and reports the conflicts the merge order
// decided.
//
// It must not do network I/O of its own (Flush hands records to the Publisher;
// whether the host is in touch is the Cluster's to say), decide who may write (the
// Gate does) or what a record means (the resources do); and nothing else may write
// the catalog or the data file: a second writer would break "on disk before anyone is
// told".
//
// Concurrency: Record, RecordAny and Tombstones may be called with the caller's locks
// held (they do disk I/O but never wait on the network); Flush and Commit publish and
// must be called with no lock held; Merge and SetStatus (the gossip.Sink) never
// block, so gossip may call them from memberlist callbacks.
package replica
