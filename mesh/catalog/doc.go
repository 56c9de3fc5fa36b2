// Package catalog owns the replicated state of a Dogwood cluster: the record types
// (hosts, orgs, networks, apps, machines, peers), the merge order that makes every
// host converge on the same records, the anti-entropy digest, and immutable snapshots
// that DNS and WireGuard read.
//
// The package does no I/O: persistence lives in mesh/store and dissemination in
// mesh/gossip. A Catalog is safe for concurrent use; snapshots are immutable.
package catalog
