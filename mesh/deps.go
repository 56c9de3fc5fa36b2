package mesh

import (
	"context"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
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

// Snapshots is the catalog as the data plane reads it. Data flows one way: the
// catalog publishes a snapshot and signals; the data plane reads the latest one and
// never calls back into the core to read.
type Snapshots interface {
	// Latest is the newest published snapshot; lock-free, never nil.
	Latest() *catalog.Snapshot
	// Watch signals (coalesced, never blocking the writer) after every change, and
	// once right away; stop ends the signals.
	Watch() (changed <-chan struct{}, stop func())
}

// DataPlane is what the core needs of the host's data plane (WireGuard, links,
// filters). The agent implements it; tests and hosts without a data plane pass nil.
//
// Concurrency: Up is called once, from Start, before any other method. Installed
// and PeerStats are called from API and RPC goroutines, concurrently, with no lock of
// the core held; they may block on the data plane's own work (Installed until its
// change is applied or ctx ends) but must not call back into the Node.
type DataPlane interface {
	Installer
	// Up runs once the host's identity and catalog are loaded and before the host
	// joins or announces itself, so no other host ever sends a handshake to a port
	// that is not listening yet (a lost first handshake costs a 5 s retry). cat is
	// the catalog the host keeps for the rest of its life: the data plane reads it
	// from here on, never the Node, which is still starting.
	Up(name string, key wgtypes.Key, cat Snapshots) error
	// PeerStats reports the data plane's view of WireGuard peers, by public key.
	PeerStats() map[string]PeerStat
}

// Reader is what the resources read of the catalog: a subset of *catalog.Catalog's
// methods, so a resource's unit test can hand it a catalog it filled by hand (or a
// fake) and a resource cannot write the catalog past the Writer.
//
// Concurrency: every method is safe to call from any goroutine with any lock held
// (the catalog takes only its own short locks and does no I/O).
type Reader interface {
	// Get is the record under id, tombstones included; nil when there is none.
	Get(id catalog.ID) *catalog.Record
	// Live is Get without tombstones.
	Live(id catalog.ID) *catalog.Record
	// List is the live records of a kind.
	List(kind catalog.Kind) []*catalog.Record
	// ByRequest is the record a create with this request id made, tombstones included.
	ByRequest(kind catalog.Kind, requestID string) *catalog.Record
	Snapshot() *catalog.Snapshot
	// Status is a host's membership status as this host sees it.
	Status(host string) string
	NetworkIDClaims(id uint32) []string
	FieldUsed(hostID, field uint32) bool
	FreePeerIndex(gatewayID, networkID uint32, reserved map[int]bool) int
	// Watch signals each change; stop ends the subscription.
	Watch() (changed <-chan struct{}, stop func())
	// Tick advances the catalog's Lamport clock and returns the stamp a new version
	// takes. It changes no record: it is a read of the clock that never returns the
	// same stamp twice.
	Tick() catalog.Stamp
}

// Namer writes records whose name is unique in the cluster (orgs, networks, apps,
// peers, DNS records): it reserves the name with the name's arbiters before the
// write, so of two concurrent creates of one name on two hosts at most one is
// written and the other caller gets a conflict instead of a silent success.
//
// Concurrency: it waits on the network; call it with no lock held.
type Namer interface {
	// CreateNamed writes build's record under id, which must not exist (live).
	CreateNamed(ctx context.Context, build func() *catalog.Record, id catalog.ID, what string) (*catalog.Record, error)
	// WriteNamed writes a new generation of a name (an ALIAS switched to a new target).
	WriteNamed(ctx context.Context, w NamedWrite) (*catalog.Record, error)
	// Reclaim reserves r's unique values again and commits r (the same record
	// identity with a newer version): a network whose id another network won takes
	// a new one.
	Reclaim(ctx context.Context, r *catalog.Record, what string) error
}

// NamedWrite is one write under a name that arbiters guard: a create, or an alias
// switched to a new target.
type NamedWrite struct {
	ID    catalog.ID
	What  string
	Build func() *catalog.Record
	// Taken refuses the write before the claim, Raced after it (a write of the name
	// on this host meanwhile); gen is the generation this write takes.
	Taken, Raced func(cur *catalog.Record, gen uint32) error
	// Lost is the error when another host's write of the name won.
	Lost string
}

// Allocator serializes what is allocated under this host's id (machine fields,
// gateway peer slots) with the id itself: a host-id collision moves the id only
// while nothing is allocated under it, so allocation and the move exclude each
// other.
//
// Concurrency: f runs with the allocation lock held; it may Record (disk) but must
// not Flush or wait on the network. What f records is the caller's to Flush after
// Allocate returns.
type Allocator interface {
	// Allocate runs f with the host's id, which cannot change while f runs. It
	// refuses (unavailable) once the cluster no longer accepts this host.
	Allocate(f func(hostID uint32) error) error
}

// Caller asks the host that owns a record (a machine's host, a peer's gateway) to
// run an operation (gossip.Call). It waits on the network: call it with no lock held.
type Caller interface {
	Call(ctx context.Context, host, op string, req, resp any) error
}

// Handlers is where a resource registers the operations other hosts call on it
// (gossip.Handle). Handlers run on the RPC's goroutine and may block.
type Handlers interface {
	Handle(op string, h gossip.Handler)
}
