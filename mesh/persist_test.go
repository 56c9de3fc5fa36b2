package mesh

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/store"
)

// TestPersistAsyncNeverBlocks: gossip hands remote records to persistAsync from
// memberlist callbacks, which must not block. With the writer stalled (here: not
// running at all) any number of calls return, and the writer later gets each id
// once with the newest version the catalog holds.
func TestPersistAsyncNeverBlocks(t *testing.T) {
	n := &Node{remote: newRemoteWriter(nil, nil, nil, time.Now)}
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
	if ids := n.remote.take(); len(ids) != 3000 {
		t.Fatalf("writer got %d ids, want the 3000 distinct ones", len(ids))
	}
	if ids := n.remote.take(); len(ids) != 0 {
		t.Fatalf("ids handed out twice: %d", len(ids))
	}
}

// TestRemoteRecordsWrittenOnClose: remote records wait up to persistWindow to be
// written together; a host closed inside that window still has them on disk.
func TestRemoteRecordsWrittenOnClose(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	h0, h1 := c.hosts[0], c.hosts[1]
	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, "the org reaches h1", func() bool { return len(h1.Orgs.List()) > 0 })
	// At once: inside the window, before the writer's transaction.
	rs := closedRecords(t, h1)
	for _, r := range rs {
		if r.Kind == catalog.KindOrg && r.Key == "acme" {
			return
		}
	}
	t.Fatalf("h1 closed %v after the org arrived and lost it: %d records on disk", persistWindow, len(rs))
}

// closedRecords closes h and returns what its data dir holds.
func closedRecords(t *testing.T, h *testHost) []*catalog.Record {
	t.Helper()
	h.Close()
	st, err := store.Open(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
