package mesh

import (
	"context"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// The contracts between the core's parts. Each resource type (machines, apps, orgs,
// networks, peers, DNS records, invites) reaches the rest of the host only through
// these, so it can be built in a unit test with fakes and cannot reach past its
// neighbours; the Node builds the parts and hands each the ones it needs, as
// wireguard-go's NewDevice takes its tun.Device and conn.Bind.

// Writer is the write path: the only way a resource changes the catalog. Records go
// durable (synced to disk), then visible (applied to the catalog), then published
// (Flush), in that order, so nobody is told of a write a crash could lose.
//
// Concurrency: Record does disk I/O but no network I/O, so a resource may call it with
// its own lock held; that is what makes "check, allocate, record" atomic. Flush and
// Commit publish (network) and must be called with no lock held.
type Writer interface {
	// Writable is nil when this host may write now. An operation that reserves
	// something elsewhere first (a name with its arbiters) checks it before, so a
	// refused write leaves nothing behind.
	Writable() error
	// Record makes rs durable and visible and queues them for publication.
	Record(rs ...*catalog.Record) error
	// Flush publishes everything Record queued.
	Flush()
	// Commit is Record then Flush.
	Commit(rs ...*catalog.Record) error
	// Tombstones builds (does not record) deletions of the given live records.
	Tombstones(rs ...*catalog.Record) []*catalog.Record
}

// Installer brings the data plane in line with the catalog and reports only the
// failures that concern object id: an operation waits for its own machine or peer and
// fails only for its own reasons. Call with no lock held.
type Installer interface {
	Installed(ctx context.Context, id catalog.ID) error
}

// DataPlane is what the core needs of the host's data plane (WireGuard, links,
// filters). The agent implements it; tests and hosts without a data plane pass nil.
type DataPlane interface {
	Installer
	// Up runs once the host's identity is loaded and before it joins or announces
	// itself, so no other host ever sends a handshake to a port that is not listening
	// yet (a lost first handshake costs a 5 s retry).
	Up(name string, key wgtypes.Key) error
	// PeerStats reports the data plane's view of WireGuard peers, by public key.
	PeerStats() map[string]PeerStat
}
