package mesh

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// flakyStore is a store whose writes fail until healed.
type flakyStore struct {
	mu      sync.Mutex
	failing bool
	saved   map[catalog.ID]int
	tries   int
}

func (s *flakyStore) put(rs ...*catalog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	if s.failing {
		return errors.New("no space left on device")
	}
	for _, r := range rs {
		s.saved[r.ID()]++
	}
	return nil
}

func (s *flakyStore) set(failing bool) { s.mu.Lock(); s.failing = failing; s.mu.Unlock() }
func (s *flakyStore) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.saved), s.tries
}

func recs(n int) []*catalog.Record {
	var rs []*catalog.Record
	for i := 0; i < n; i++ {
		rs = append(rs, &catalog.Record{Kind: catalog.KindOrg, Key: string(rune('a' + i))})
	}
	return rs
}

func byID(ids []catalog.ID) []*catalog.Record {
	var rs []*catalog.Record
	for _, id := range ids {
		rs = append(rs, &catalog.Record{Kind: id.Kind, Key: id.Key})
	}
	return rs
}

// TestFailedRemoteWriteStaysPending: a write of other hosts' records that fails
// (a full disk) keeps them pending, says the disk is behind, and is retried by the
// writer on its own (no new record needs to arrive); once the disk works every
// record is written and the host is caught up again.
func TestFailedRemoteWriteStaysPending(t *testing.T) {
	st := &flakyStore{failing: true, saved: map[catalog.ID]int{}}
	w := newRemoteWriter(st.put, byID, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	w.add(recs(3))
	if err := w.write(); err == nil {
		t.Fatal("a failed write reported success")
	}
	if err := w.behind(); err == nil || !strings.Contains(err.Error(), "3 records") || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("behind after a failed write: %v", err)
	}
	w.add(recs(5)) // more arrive meanwhile (3 of them the same ids)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); w.run(stop, time.Millisecond) }()
	defer func() { close(stop); <-done }()
	// The writer retries while the disk fails...
	deadline := time.Now().Add(10 * time.Second)
	for _, tries := st.counts(); tries < 3; _, tries = st.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("the writer retried %d times in 10 s", tries)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.behind(); err == nil || !strings.Contains(err.Error(), "5 records") {
		t.Fatalf("behind while failing: %v", err)
	}
	// ...and catches up without any new record once it works.
	st.set(false)
	for w.behind() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the disk never caught up: %v", w.behind())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if saved, _ := st.counts(); saved != 5 {
		t.Fatalf("%d of 5 records on disk after recovery", saved)
	}
	if ids := w.take(); len(ids) != 0 {
		t.Fatalf("%d ids still pending after a successful write", len(ids))
	}
}

// TestCloseReportsFailures: Close returns what failed (here: the data file was
// already closed under it, so saving the contact time and the last remote records
// fail) instead of nil.
func TestCloseReportsFailures(t *testing.T) {
	c := newCluster(t, 2)
	h := c.hosts[1]
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	h.remote.add(recs(1))
	err := h.Close()
	if err == nil {
		t.Fatal("Close returned nil with a closed data file under it")
	}
	t.Logf("Close: %v", err)
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestNoIgnoredErrors: no call's error is thrown away with `_ =` in this package's
// code (rollbacks included: a failed rollback is reported with the error that caused
// it).
func TestNoIgnoredErrors(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok || len(as.Rhs) != 1 {
				return true
			}
			if _, call := as.Rhs[0].(*ast.CallExpr); !call {
				return true
			}
			for _, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); !ok || id.Name != "_" {
					return true
				}
			}
			t.Errorf("%s: a call's result is discarded with `_ =`", fset.Position(as.Pos()))
			return true
		})
	}
}
