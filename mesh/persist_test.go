package mesh

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/replica"
	"github.com/dogwood/dogwood/mesh/store"
)

// TestRemoteRecordsWrittenOnClose: remote records wait up to replica.Window to be
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
	t.Fatalf("h1 closed %v after the org arrived and lost it: %d records on disk", replica.Window, len(rs))
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

// TestCloseReportsFailures: Close returns what failed (here: the data file was
// already closed under it, so saving the contact time and the last remote records
// fail) instead of nil.
func TestCloseReportsFailures(t *testing.T) {
	c := newCluster(t, 2)
	h := c.hosts[1]
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	h.rep.Merge([]*catalog.Record{{Kind: catalog.KindOrg, Key: "zz", Gen: 1, Org: &catalog.Org{Slug: "zz"}}})
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
	var files []string
	for _, dir := range []string{".", "replica", "clock"} {
		fs, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
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
