// Package mesh owns a host's place in the cluster: its admission (identity and the
// write gate), unique-name writes, and one type per resource the API offers
// (Machines, Apps, Orgs, Networks, Peers, DNSRecords, Invites, Members). Node is
// their composition root: it builds the parts, hands each the neighbours it needs as
// the small interfaces of deps.go (Writer, Namer, Reader, Allocator, Installer,
// Caller), and exposes the resources as fields (node.Machines.Create). It wires
// mesh/catalog (state), mesh/replica (the only writer of catalog and disk),
// mesh/claim (name reservations) and mesh/gossip (network) together.
//
// It must not reach into the data plane or DNS (they read catalog snapshots, and
// the data plane is handed in as an Installer), and a resource must not write the
// catalog or disk except through its Writer or Namer.
//
// # Route map
//
// A local write (`machines create` on this host):
//
//	mesh/api ─► Machines.Create ─► checks (Reader: app, quotas, namespace)
//	            │
//	            ├─► Allocator.Allocate (admission: field and id under the host id, lock held)
//	            │     └─► Writer.Record (replica) ─► mesh/store (fsync) ─► catalog.Apply
//	            ├─► Writer.Flush (no lock held) ─► gossip publish (broadcast tree)
//	            └─► Installer.Installed ─► data plane (WireGuard, veth, nftables);
//	                DNS answers from the snapshot the apply published
//
// A named create (orgs, networks, apps, peers, DNS records) goes through the Namer
// (names) first: mesh/claim reserves the name with a majority of its arbiters, then
// the record takes the same Writer path, and the arbiters are handed the written
// record. A change to a record another host owns (another host's machine, a peer on
// its gateway) is sent to that host with Caller and written there.
//
// A remote write (a record another host wrote):
//
//	gossip (quota check: Admit) ─► replica.Merge, gossip's Sink (memberlist
//	   goroutines: must not block) ─► catalog merge (merge order)
//	   ├► replica's persister (batched, one fsync per window) ─► mesh/store
//	   └► catalog watchers: the data plane's reconciler, DNS, admission's identity loop
//
// Who may write: admission's gate (Writer.Writable). Until a host of the cluster has
// confirmed what it holds under this host's name since it started, every write is
// refused (503) before anything is reserved or recorded; once the cluster has
// removed or superseded this host, Allocate refuses too and the node stops. Only a
// record's owner writes it (a machine's host, a peer's gateway); records arriving
// from other hosts are checked against the quotas (gossip's Admit) before they reach
// the Sink.
package mesh
