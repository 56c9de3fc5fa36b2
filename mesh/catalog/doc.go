// Package catalog owns the replicated state of a Dogwood cluster: the records this
// host holds (their types live in mesh/record and keep their names here), the merge
// order applied to them so every host converges on the same records, host statuses,
// the anti-entropy digest, and immutable snapshots that DNS and WireGuard read.
//
// The package does no I/O: persistence lives in mesh/store and dissemination in
// mesh/gossip. A Catalog is safe for concurrent use; snapshots are immutable.
package catalog
