package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/release"
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

// putRaw stores a value under a record key as another writer (an older agent, a
// damaged disk) left it.
func putRaw(t *testing.T, dir string, id catalog.ID, v []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "dogwood.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRecords).Put(recordKey(id), v) }); err != nil {
		t.Fatal(err)
	}
}

func setSchema(t *testing.T, dir string, v uint32) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "dogwood.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := binary.BigEndian.AppendUint32(nil, v)
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, b) }); err != nil {
		t.Fatal(err)
	}
}

func schema(t *testing.T, s *Store) (v uint32) {
	s.db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	return v
}

// TestNewerSchemaRefused: a file from a newer dogwood is refused by its version.
func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	setSchema(t, dir, SchemaVersion+1)
	want := fmt.Sprintf("this data dir was written by a newer release (v%s); run that release or newer", release.Version)
	if _, err := Open(dir); err == nil || err.Error() != want {
		t.Fatalf("open: %v\nwant %s", err, want)
	}
}

// TestJSONValuesStillLoad: data dirs written before the binary encoding hold JSON
// values; they load next to binary ones.
func TestJSONValuesStillLoad(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := catalog.Stamp{Clock: 3, Node: 7}
	bin := &catalog.Record{Kind: catalog.KindOrg, Key: "new", Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: "new"}}
	if err := s.Put(bin); err != nil {
		t.Fatal(err)
	}
	s.Close()
	m := &catalog.Record{Kind: catalog.KindMachine, Key: "00000000000001", Gen: 1, Created: st, Version: st,
		Machine: &catalog.Machine{ID: "00000000000001", MachinePlace: &catalog.MachinePlace{App: "web", Org: "acme", Network: "default", NetworkID: 0x18, Host: "h", HostID: 7, Region: "ord"},
			Field: 0x10001, Address: netip.MustParseAddr("fdaa:0:18:0:7:1:1:2"),
			MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, ProcessGroup: "app", Metadata: map[string]string{"role": "web"}}}}
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, dir, m.ID(), js)
	setSchema(t, dir, 1) // as the agent before the binary encoding left it
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := schema(t, s); got != SchemaVersion {
		t.Errorf("schema %d after opening a version 1 file, want %d", got, SchemaVersion)
	}
	rs, err := s.Load()
	if err != nil || len(rs) != 2 {
		t.Fatalf("load: %d records, %v", len(rs), err)
	}
	for _, r := range rs {
		want := bin
		if r.Kind == catalog.KindMachine {
			want = m
		}
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(want)
		if string(a) != string(b) {
			t.Errorf("loaded %s\nwant %s", a, b)
		}
	}
	// The binary form is what Put writes.
	s.db.View(func(tx *bolt.Tx) error {
		for _, id := range []catalog.ID{bin.ID(), m.ID()} {
			if v := tx.Bucket(bucketRecords).Get(recordKey(id)); len(v) == 0 || v[0] == '{' {
				t.Errorf("stored value %q is not binary", v)
			}
		}
		return nil
	})
}

// TestCorruptValue: a value that decodes as neither form, or with bytes after the
// record, is a damaged file, not a smaller catalog.
func TestCorruptValue(t *testing.T) {
	st := catalog.Stamp{Clock: 3, Node: 7}
	good := catalog.AppendRecord(nil, &catalog.Record{Kind: catalog.KindOrg, Key: "acme", Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: "acme"}})
	for name, v := range map[string][]byte{
		"truncated":   good[:len(good)-3],
		"trailing":    append(append([]byte{}, good...), 0),
		"format":      append([]byte{0x7f}, good[1:]...),
		"broken json": []byte(`{"k":2,"key":`),
		"empty":       {},
	} {
		dir := t.TempDir()
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		putRaw(t, dir, catalog.ID{Kind: catalog.KindOrg, Key: "acme"}, v)
		if s, err = Open(dir); err != nil {
			t.Fatal(err)
		}
		_, err = s.Load()
		s.Close()
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s: load: %v, want a CorruptError", name, err)
		}
	}
}

// TestLoadEachBatches: every record once, in key order, at most batch at a time.
func TestLoadEachBatches(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := catalog.Stamp{Clock: 3, Node: 7}
	var want []string
	for _, slug := range []string{"e", "a", "d", "b", "c"} {
		if err := s.Put(&catalog.Record{Kind: catalog.KindOrg, Key: slug, Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: slug}}); err != nil {
			t.Fatal(err)
		}
	}
	want = []string{"a", "b", "c", "d", "e"}
	var got []string
	var sizes []int
	if err := s.LoadEach(2, func(rs []*catalog.Record) {
		sizes = append(sizes, len(rs))
		for _, r := range rs {
			got = append(got, r.Key)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || len(sizes) != 3 || sizes[0] != 2 || sizes[2] != 1 {
		t.Fatalf("got %v in batches %v", got, sizes)
	}
}
