// Package proto owns Dogwood's dissemination protocols as deterministic state
// machines with no I/O, no clock and no goroutines (the shape of iroh-gossip's
// proto/net split):
//
//   - Tree (plumtree.go) is Plumtree's message flow (Leitão et al. 2007): every
//     change travels eagerly along a spanning tree and is announced lazily (ids
//     only, batched) to a few random neighbors; a host that hears of a change it
//     has not received asks the announcer for it. The agent and the simulator fix
//     the tree's links from membership (Ring, ring.go: every host computes the same
//     tree from the same member list); without that, the tree is shaped by message
//     timing as in the paper (a duplicate prunes its link, a graft adds one), which
//     did not settle with many sources. Each host sends a change to about one tree
//     neighbor on average and announces it to a bounded number of others, so the
//     cost per host does not grow with the fleet. Its eager copies leave through
//     eagerLinks and outbox (eager.go): at once on a quiet link, batched on a
//     busy one, and copies made together for one link in one packet.
//   - AntiEntropy (antientropy.go) is the safety net: a digest exchange with one
//     random member at a time that repairs whatever the tree missed (loss,
//     partitions, a host that was away).
//
// Callers feed in received messages, membership changes and the current time, and
// send what the machines queue. mesh/gossip runs them over memberlist;
// mesh/gossip/sim runs the same code for thousands of hosts in virtual time.
package proto
