package mesh

import (
	"fmt"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// TestPersistAsyncNeverBlocks: gossip hands remote records to persistAsync from
// memberlist callbacks, which must not block. With the writer stalled (here: not
// running at all) any number of calls return, and the writer later gets each id
// once with the newest version the catalog holds.
func TestPersistAsyncNeverBlocks(t *testing.T) {
	n := &Node{pending: map[catalog.ID]struct{}{}, persistSig: make(chan struct{}, 1), stop: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5000; i++ {
			key := fmt.Sprintf("%014x", i%3000)
			n.persistAsync([]*catalog.Record{{Kind: catalog.KindMachine, Key: key}})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("persistAsync blocked with no writer running (a gossip callback would hang memberlist)")
	}
	if ids := n.takePending(); len(ids) != 3000 {
		t.Fatalf("writer got %d ids, want the 3000 distinct ones", len(ids))
	}
	if ids := n.takePending(); len(ids) != 0 {
		t.Fatalf("ids handed out twice: %d", len(ids))
	}
}
