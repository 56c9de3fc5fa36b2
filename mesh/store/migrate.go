package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/release"
)

// Every layout this package ever wrote, oldest first (git log -- mesh/store
// mesh/catalog), and how a file of each is found:
//
//	schema 1, JSON records, app keys "name"     b9503e2 (v0.1.0) and before 7b13a38
//	schema 1, JSON records, app keys "org/name" 7b13a38 (CNAME and ALIAS records keyed
//	                                            with a hash of their value until c8038c1)
//	schema 1, binary records, JSON ones left    4c0af38
//	schema 2, binary records, JSON ones left    e70e7c0 .. 4ecf7e8 (v0.2.0); a file of any
//	                                            layout above that v0.2.0 opened is marked 2
//	schema 2, layout 3: every record binary     this release
//	          under its canonical key
//
// The schema is what a reader must understand to read the file at all: a binary
// older than the file's schema refuses it, naming the release that wrote it. The
// layout is how far within that schema the records were rewritten; older binaries
// of the same schema ignore it, which is what lets a host go back one release with
// its data dir. Neither a JSON value nor a name-only app key can be told by the
// schema number (v0.2.0 marked files 2 before reading a record), so migration looks
// at every record of a file whose layout is older.

// Layout is the record layout a file is migrated to at open.
const Layout = 3

var (
	keyLayout  = []byte("layout")
	keyRelease = []byte("release")
)

// NewerError refuses a data file whose schema is newer than this binary reads.
type NewerError struct {
	Path    string
	Schema  int
	Release string // the release that wrote the schema, "vX.Y.Z"; "" if unrecorded
}

func (e *NewerError) Error() string {
	r := e.Release
	if r == "" {
		r = fmt.Sprintf("store schema %d", e.Schema)
	}
	return fmt.Sprintf("this data dir was written by a newer release (%s); run that release or newer", r)
}

// Migration is what Open did to an older file.
type Migration struct {
	From, To  string // "schema 1 layout 0", "schema 2 layout 3"
	Backup    string // the copy written beside the file before anything changed
	Rewritten int    // records re-encoded or re-keyed
	// Dropped counts bodyless tombstones under retired key forms and records
	// that lost to another under the key both migrate to (the merge order decides).
	Dropped int
}

// needsMigration reads the file's schema and layout; newer schemas are refused.
func (s *Store) readVersions(meta *bolt.Bucket) (schema, layout uint32, err error) {
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return 0, 0, errDamagedMeta("the meta bucket has no schema version")
	}
	schema = binary.BigEndian.Uint32(v)
	if schema == 0 {
		return 0, 0, errDamagedMeta("the meta bucket's schema version is 0")
	}
	if schema > SchemaVersion {
		rel := string(meta.Get(keyRelease))
		if rel == "" {
			rel = release.ForSchema(int(schema))
		}
		return 0, 0, &NewerError{Path: s.db.Path(), Schema: int(schema), Release: rel}
	}
	if l := meta.Get(keyLayout); len(l) == 4 {
		layout = binary.BigEndian.Uint32(l)
	}
	return schema, layout, nil
}

// rewrite is one record that migration re-keys or re-encodes.
type rewrite struct {
	oldKey, newKey, value []byte // value nil: drop
	rec                   *catalog.Record
}

// plan lists the records of an older layout that change: JSON values become
// binary, name-only app keys become org/name. Records that are already current
// are left alone.
func plan(b *bolt.Bucket) (out []rewrite, err error) {
	err = b.ForEach(func(k, v []byte) error {
		w, err := upgradeRecord(k, v)
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		if w != nil {
			out = append(out, *w)
		}
		return nil
	})
	return out, err
}

// upgradeRecord returns how one stored record changes, nil if it does not.
func upgradeRecord(k, v []byte) (*rewrite, error) {
	isJSON := len(v) > 0 && v[0] == '{'
	r, err := decodeValue(v)
	if err != nil {
		return nil, err
	}
	old := bytes.Clone(k)
	if key, ok := canonicalKey(r); ok {
		r.Key = key
	} else if r.Deleted && oldStyleKey(r) {
		// A bodyless tombstone under a key no current writer produces (an app
		// keyed by name alone, a CNAME keyed with its value's hash): nothing can
		// be resurrected under that key any more, and there is no body to re-key
		// it by, so it goes.
		return &rewrite{oldKey: old}, nil
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	nk := recordKey(r.ID())
	if !isJSON && bytes.Equal(nk, k) {
		return nil, nil
	}
	return &rewrite{oldKey: old, newKey: nk, value: catalog.AppendRecord(nil, r), rec: r}, nil
}

// canonicalKey is the key a record's body gives it today, for the kinds whose key
// rule changed: apps (org/name since 7b13a38) and CNAME/ALIAS records (by name since
// c8038c1).
func canonicalKey(r *catalog.Record) (string, bool) {
	switch {
	case r.Kind == catalog.KindApp && r.App != nil:
		return catalog.AppKey(r.App.Org, r.App.Name), true
	case r.Kind == catalog.KindDNSRecord && r.DNS != nil:
		return catalog.DNSRecordKey(r.DNS.NetworkID, r.DNS.Name, r.DNS.Type, r.DNS.Value), true
	}
	return "", false
}

func oldStyleKey(r *catalog.Record) bool {
	switch r.Kind {
	case catalog.KindApp:
		return !strings.Contains(r.Key, "/")
	case catalog.KindDNSRecord:
		f := strings.Split(r.Key, "/")
		return len(f) == 4 && (f[2] == "CNAME" || f[2] == "ALIAS")
	}
	return false
}

// migrate brings a file of an older layout to Layout in one transaction, after a
// backup copy of it is on disk beside it. The caller holds no transaction.
func (s *Store) migrate() (*Migration, error) {
	var schema, layout uint32
	var ws []rewrite
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if schema, layout, err = s.readVersions(tx.Bucket(bucketMeta)); err != nil {
			return err
		}
		if schema == SchemaVersion && layout >= Layout {
			return nil
		}
		if b := tx.Bucket(bucketRecords); b != nil {
			ws, err = plan(b)
		}
		return err
	})
	if err != nil || (schema == SchemaVersion && layout >= Layout) {
		return nil, err
	}
	m := &Migration{From: fmt.Sprintf("schema %d layout %d", schema, layout),
		To: fmt.Sprintf("schema %d layout %d", SchemaVersion, Layout)}
	if m.Backup, err = s.backupBeside(fmt.Sprintf("schema%d-layout%d", schema, layout)); err != nil {
		return nil, fmt.Errorf("backup before migrating: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRecords)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if err := b.Delete(w.oldKey); err != nil {
				return err
			}
		}
		for _, w := range ws {
			if w.value == nil {
				m.Dropped++
				continue
			}
			// Two records may migrate to one key (a CNAME's tombstone and its
			// successor keyed by value hash): the merge order keeps one, as
			// gossip would.
			if prev := b.Get(w.newKey); prev != nil {
				o, err := decodeValue(prev)
				if err != nil {
					return fmt.Errorf("record %q: %w", w.newKey, err)
				}
				m.Dropped++
				if !w.rec.Wins(o) {
					continue
				}
			}
			if err := b.Put(w.newKey, w.value); err != nil {
				return err
			}
			m.Rewritten++
		}
		return s.markCurrent(tx.Bucket(bucketMeta))
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// markCurrent records the schema, layout and release this binary writes.
func (s *Store) markCurrent(meta *bolt.Bucket) error {
	// Separate slices: bbolt keeps a value's slice until the transaction commits.
	if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
		return err
	}
	if err := meta.Put(keyLayout, binary.BigEndian.AppendUint32(nil, Layout)); err != nil {
		return err
	}
	return meta.Put(keyRelease, []byte("v"+release.Version))
}

// backupBeside writes a consistent copy of the file to dogwood.db.<tag>.bak in the
// same directory (synced, then renamed into place) and returns its path.
func (s *Store) backupBeside(tag string) (string, error) {
	path := s.db.Path() + "." + tag + ".bak"
	tmp, err := os.CreateTemp(filepath.Dir(path), ".backup-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := s.Backup(tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return path, nil
}

// decodeJSON reads a record value as the JSON layouts wrote it.
func decodeJSON(v []byte) (*catalog.Record, error) {
	r := &catalog.Record{}
	if err := json.Unmarshal(v, r); err != nil {
		return nil, err
	}
	return r, nil
}
