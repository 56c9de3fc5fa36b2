// Package release owns what this source tree is as a release: its version, and the
// table of every earlier release with the store schema and gossip protocol it
// speaks. The store and the gossip version check read it to name releases in their
// messages ("written by a newer release (v0.4.0)"); it does no I/O and decides
// nothing itself.
//
// Cutting a release: set Version, add its row to History, and add an entry to
// cmd/dogwood/CHANGELOG.md with its "Upgrading" note.
package release

// Version is this release, without the leading "v". A build from a tagged checkout
// (make build) prints the tag instead; both are the same for a release build.
const Version = "0.3.0"

// Release is one published release.
type Release struct {
	Version string // without "v"
	Commit  string // the commit it was cut from
	// Schema is the store schema (mesh/store) its data files carry.
	Schema int
	// Protocol is the gossip protocol version it speaks (mesh/gossip/version.go);
	// 1 is unsealed messages, 2 added the replay seal.
	Protocol int
}

// History lists every release, oldest first; the last row is this one. It is a
// fresh slice each call, so no caller can change another's.
func History() []Release {
	return []Release{
		{Version: "0.1.0", Commit: "b9503e2", Schema: 1, Protocol: 1},
		{Version: "0.2.0", Commit: "4ecf7e8", Schema: 2, Protocol: 2},
		{Version: Version, Schema: 2, Protocol: 3},
	}
}

// ForProtocol names the newest release that speaks protocol p at most, for
// messages about a member that speaks p ("v0.2.0"); "" when none does.
func ForProtocol(p int) string {
	name := ""
	for _, r := range History() {
		if r.Protocol <= p {
			name = "v" + r.Version
		}
	}
	return name
}

// ForSchema names the newest release whose data files carry schema s; "" if none.
func ForSchema(s int) string {
	name := ""
	for _, r := range History() {
		if r.Schema == s {
			name = "v" + r.Version
		}
	}
	return name
}
