package release_test

import (
	"testing"

	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/release"
	"github.com/dogwood/dogwood/mesh/store"
)

// TestHistoryMatchesThisBuild: the table's last row is what this build speaks and
// writes, and every release runs with the one before it (the rolling upgrade
// promise: its protocol is within the next one's accepted range).
func TestHistoryMatchesThisBuild(t *testing.T) {
	h := release.History()
	last := h[len(h)-1]
	if last.Version != release.Version || last.Protocol != gossip.Protocol || last.Schema != store.SchemaVersion {
		t.Errorf("last row %+v; this build is %s, protocol %d, schema %d", last, release.Version, gossip.Protocol, store.SchemaVersion)
	}
	if prev := h[len(h)-2]; prev.Protocol < gossip.MinProtocol {
		t.Errorf("this build refuses the previous release's protocol %d (min %d)", prev.Protocol, gossip.MinProtocol)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Protocol < h[i-1].Protocol || h[i].Schema < h[i-1].Schema {
			t.Errorf("%s goes back from %s", h[i].Version, h[i-1].Version)
		}
	}
	for p, want := range map[int]string{1: "v0.1.0", 2: "v0.2.0", 3: "v" + release.Version} {
		if got := release.ForProtocol(p); got != want {
			t.Errorf("ForProtocol(%d) = %q, want %q", p, got, want)
		}
	}
}
