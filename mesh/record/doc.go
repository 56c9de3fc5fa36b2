// Package record owns what a catalog record is: its types (hosts, orgs, networks,
// apps, machines, peers, DNS records), their validation, the merge order that
// decides between two versions of one record, the digest layout every host agrees
// on (buckets, leaves), and the binary and JSON forms records travel and rest in.
//
// It holds no state and does no I/O: it must not grow a store, a cache or anything
// that writes. That is what lets a transport (mesh/gossip) carry, check and encode
// records without importing the catalog. The binary codec and the JSON field names
// are read by earlier releases and from their data dirs: they must not change.
package record
