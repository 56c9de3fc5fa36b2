// Package meshbench owns the cluster-level performance measurements behind
// `make bench`, and one quick propagation regression test that runs with
// `go test ./...`.
//
// The measurements start real mesh.Node agents in one process, each with its own data
// dir and its own loopback address (127.0.x.y), talking real memberlist over
// loopback UDP/TCP with the gossip key set and default timings. They are ordinary Go
// tests named TestBench* that skip unless DOGWOOD_BENCH=1:
//
//   - propagation: time from Machines.Create returning on one host until every other
//     host's catalog holds the machine (p50/p99 over 200 creates, 5, 50 and 500
//     agents), with the CPU the process spent per create and the machine's load
//     average (the agents share its cores with whatever else runs);
//   - memory: heap bytes per 100,000 machine records in a catalog (and a running node);
//   - idle gossip: bytes per second each host writes with 1,000 vs 100,000 records
//     and nothing changing, and anti-entropy catch-up of a host that missed 10,000
//     records.
//
// Results are printed as lines starting with "BENCH"; when DOGWOOD_BENCH_REPORT names
// a file, a markdown report is appended to it too. DOGWOOD_BENCH_AGENTS ("5,50,500")
// and DOGWOOD_BENCH_CREATES (200) change the propagation runs; DOGWOOD_BENCH_CPUPROFILE
// names a file for a CPU profile of the creates alone.
//
// The package owns no production code: transport.go (a byte-counting wrapper around
// the agent's gossip.Transport), records.go (synthetic catalog content) and report.go are
// helpers for the tests.
package meshbench
