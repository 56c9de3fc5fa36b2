// Package proto owns Dogwood's dissemination protocols as deterministic state
// machines with no I/O, no clock and no goroutines (the shape of iroh-gossip's
// proto/net split):
//
//   - Tree (plumtree.go) is an epidemic broadcast tree (Plumtree, Leitão et al.
//     2007): every change travels eagerly along a spanning tree of a small random
//     neighbor graph and is announced lazily (ids only, batched) on the other
//     links; a host that hears of a change it has not received grafts the
//     announcing link into the tree, and a host that receives a change twice prunes
//     the second link. Each host sends a change to about one tree neighbor on
//     average and announces it to a bounded number of others, so the cost per host
//     does not grow with the fleet.
//   - AntiEntropy (antientropy.go) is the safety net: a digest exchange with one
//     random member at a time that repairs whatever the tree missed (loss,
//     partitions, a host that was away).
//
// Callers feed in received messages, membership changes and the current time, and
// send what the machines queue. mesh/gossip runs them over memberlist;
// mesh/gossip/sim runs the same code for thousands of hosts in virtual time.
package proto
