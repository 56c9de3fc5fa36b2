package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Identity(); ok {
		t.Fatal("fresh store has an identity")
	}
	id := Identity{Name: "h1", HostID: 42, PrivateKey: "k"}
	if err := s.SaveIdentity(id); err != nil {
		t.Fatal(err)
	}
	r := &catalog.Record{Kind: catalog.KindOrg, Key: "acme", Gen: 1, Created: catalog.Stamp{Clock: 1, Node: 42}, Version: catalog.Stamp{Clock: 1, Node: 42}, Org: &catalog.Org{Slug: "acme"}}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	// A second opener must fail fast with a clear error, not hang.
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok, err := s.Identity()
	if err != nil || !ok || got != id {
		t.Fatalf("identity %+v %v %v", got, ok, err)
	}
	rs, err := s.Load()
	if err != nil || len(rs) != 1 || rs[0].Org.Slug != "acme" {
		t.Fatalf("load %v %v", rs, err)
	}
}

func TestBadFiles(t *testing.T) {
	garbage := t.TempDir()
	os.WriteFile(filepath.Join(garbage, "dogwood.db"), []byte(strings.Repeat("not a database ", 1000)), 0o600)
	if _, err := Open(garbage); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: %v", err)
	}
	foreign := t.TempDir()
	db, err := bolt.Open(filepath.Join(foreign, "dogwood.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("someone-else")); return err })
	db.Close()
	if _, err := Open(foreign); err == nil || !strings.Contains(err.Error(), "not a dogwood data file") {
		t.Errorf("foreign file: %v", err)
	}
}
