// Package chaos is Dogwood's fault-injection suite: five real agents in network
// namespaces run a workload of org, app, machine and peer creates, stops, starts and
// destroys from several agents while a seeded nemesis partitions hosts (nftables
// drops), kills agents with SIGKILL and restarts them, re-images one host (same name,
// empty data dir) and removes another with `members remove` and starts it again.
// At the end it heals everything and checks that every acknowledged write is present
// (or deleted by a later acknowledged delete, or retired with its host), that all
// catalogs are identical, that no address or id is duplicated, that every started
// machine resolves and answers ping from another machine of its network, and that
// no host is a zombie.
//
// The run is reproducible from its seed (CHAOS_SEED; printed at the start and with
// the history on failure). CHAOS_ROUNDS sets the number of nemesis rounds: `make
// chaos` runs 20, `make test` a short run. It needs root and the tools of the netns
// suite; without them it skips.
package chaos
