// Package store owns a host's durable state in bbolt: its identity (name, host id,
// WireGuard key) and every catalog record it holds. A write returns only after bbolt
// has synced it, which is what lets the API acknowledge creates that survive kill -9.
//
// Caveats worth knowing: bbolt takes an exclusive file lock, so a second agent on the
// same data dir fails after Options.Timeout instead of waiting forever; values read
// from bbolt are only valid inside their transaction, so everything is decoded (copied)
// before the transaction ends.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// SchemaVersion is bumped only when a release before it could not read the file any
// more (it then refuses it as newer); changes older readers can still read are
// layouts (migrate.go). Version 2 stores records in the binary encoding.
const SchemaVersion = 2

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	keyMagic      = []byte("magic")
	keySchema     = []byte("schema")
	keyIdentity   = []byte("identity")
	keyAliveAt    = []byte("alive_at")
	magic         = []byte("dogwood")
)

// ErrLocked means another process holds the data dir.
var ErrLocked = errors.New("data dir is in use by another dogwood agent")

// Identity is what makes a host the same host across restarts.
type Identity struct {
	Name       string        `json:"name"`
	HostID     uint32        `json:"host_id"`
	PrivateKey string        `json:"private_key"` // WireGuard, base64
	Created    catalog.Stamp `json:"created"`
	Gen        uint32        `json:"gen"`
	// Settled is set once the host has checked its name's history with the cluster
	// (or took the name over). Until then a different incarnation holding the name is
	// an older one this host replaces (a re-image); afterwards it is a newer one that
	// replaced this data dir.
	Settled bool `json:"settled,omitempty"`
}

// Store is an open data dir.
type Store struct {
	db       *bolt.DB
	migrated *Migration
}

// Migrated says what Open did to a file of an older layout; nil if it was current.
func (s *Store) Migrated() *Migration { return s.migrated }

// ErrCorrupt means the data file is damaged: empty, truncated, or with pages bbolt
// cannot make sense of. errors.Is works on the *CorruptError Open returns.
var ErrCorrupt = errors.New("damaged data file")

// CorruptError names the damaged file, says what is wrong and how to recover.
type CorruptError struct {
	Path  string
	Cause string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is damaged (%s). To recover, restore a backup (`dogwood restore FILE`, with the agent stopped), "+
		"or move the file away to start this host as a new host (new host id and WireGuard key; "+
		"then remove the old one with `dogwood members remove NAME` on another host)", e.Path, e.Cause)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Open opens (creating if needed) dir/dogwood.db. An existing file is checked page
// by page (bbolt's consistency check) before anything reads it: a damaged file ends
// in a *CorruptError, never in a panic, and an empty file is never taken for a new
// host (that would silently give the host a new identity).
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, "dogwood.db")
	fi, statErr := os.Stat(path)
	existed := statErr == nil
	if existed && fi.Size() == 0 {
		return nil, &CorruptError{Path: path, Cause: "the file is empty"}
	}
	var file *os.File
	db, err := guard(func() (*bolt.DB, error) {
		return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second,
			OpenFile: func(p string, flag int, mode os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(p, flag, mode)
				file = f
				return f, err
			}})
	})
	var pe *panicError
	if errors.As(err, &pe) && file != nil {
		// bbolt panicked holding the file, its lock and a memory map (which keeps
		// the open file, and so the lock, alive after Close): unlock explicitly.
		syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
		file.Close()
	}
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("%s: %w", path, err)
		case existed:
			return nil, &CorruptError{Path: path, Cause: err.Error()}
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &Store{db: db}
	if existed {
		if err := s.check(); err != nil {
			db.Close()
			return nil, &CorruptError{Path: path, Cause: err.Error()}
		}
	}
	if _, err := guard(func() (struct{}, error) { return struct{}{}, s.init() }); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	m, err := guard(s.migrate)
	if err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	s.migrated = m
	return s, nil
}

// openError classifies what init and migrate return: a newer file as it is, damage
// as a *CorruptError.
func openError(path string, err error) error {
	var ne *NewerError
	if errors.As(err, &ne) {
		return ne
	}
	var dm errDamagedMeta
	var pe *panicError
	if errors.As(err, &dm) || errors.As(err, &pe) {
		return &CorruptError{Path: path, Cause: err.Error()}
	}
	return fmt.Errorf("%s: %w", path, err)
}

// guard turns a bbolt panic (it asserts on pages it cannot read: "invalid
// freelist page", "Page expected to be …") into a *panicError.
//
// A scribbled element can also point outside the memory map; with panic-on-fault
// the access is a panic here too rather than a crash of the process.
func guard[T any](f func() (T, error)) (v T, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{fmt.Sprint(r)}
		}
	}()
	return f()
}

type panicError struct{ msg string }

type errDamagedMeta string

func (e errDamagedMeta) Error() string { return string(e) }

func (e *panicError) Error() string { return e.msg }

func touch(b []byte) (s byte) {
	for _, c := range b {
		s += c
	}
	return s
}

// check reads every page reachable from the root: every bucket, key and value.
// bbolt's own Tx.Check runs in a goroutine of its own, where a panic on a bad page
// cannot be recovered, so the walk is ours; bbolt asserts on each page it loads,
// which is what turns a scribbled page into an error here instead of a crash later.
func (s *Store) check() error {
	_, err := guard(func() (struct{}, error) {
		return struct{}{}, s.db.View(func(tx *bolt.Tx) error {
			var sum byte
			var walk func(b *bolt.Bucket) error
			walk = func(b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if v == nil {
						if nb := b.Bucket(k); nb != nil {
							return walk(nb)
						}
					}
					sum += touch(k) + touch(v) // fault now, inside guard, if they point astray
					return nil
				})
			}
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
		})
	})
	return err
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A bbolt file with other buckets is someone else's database.
			foreign := false
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error { foreign = true; return nil })
			if foreign {
				return errors.New("a bbolt file that is not a dogwood data file")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyMagic, magic); err != nil {
				return err
			}
			if err := s.markCurrent(meta); err != nil {
				return err
			}
		}
		// A meta bucket with a wrong magic or schema field is our file, damaged.
		if string(meta.Get(keyMagic)) != string(magic) {
			return errDamagedMeta("the meta bucket's magic is wrong")
		}
		if _, _, err := s.readVersions(meta); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketRecords)
		return err
	})
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Identity returns the stored identity; ok is false on a fresh data dir.
func (s *Store) Identity() (id Identity, ok bool, err error) {
	_, err = guard(func() (struct{}, error) { return struct{}{}, s.identity(&id, &ok) })
	if err != nil {
		err = &CorruptError{Path: s.db.Path(), Cause: "stored identity: " + err.Error()}
	}
	return id, ok, err
}

func (s *Store) identity(id *Identity, ok *bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyIdentity)
		if v == nil {
			return nil
		}
		*ok = true
		return json.Unmarshal(v, id)
	})
}

// SaveIdentity stores the identity (synced).
func (s *Store) SaveIdentity(id Identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyIdentity, b) })
}

func recordKey(id catalog.ID) []byte {
	return append([]byte{byte(id.Kind)}, id.Key...)
}

// Put stores records in one synced transaction.
func (s *Store) Put(rs ...*catalog.Record) error {
	if len(rs) == 0 {
		return nil
	}
	type kv struct{ k, v []byte }
	enc := make([]kv, len(rs))
	var buf []byte
	for i, r := range rs {
		start := len(buf)
		buf = catalog.AppendRecord(buf, r)
		enc[i] = kv{recordKey(r.ID()), buf[start:len(buf):len(buf)]}
	}
	// bbolt writes keys in order far faster than scattered ones (fewer page splits
	// and touched pages per transaction).
	sort.SliceStable(enc, func(i, j int) bool { return bytes.Compare(enc[i].k, enc[j].k) < 0 })
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for _, e := range enc {
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delete removes records (collected tombstones, forgotten records) in one synced
// transaction.
func (s *Store) Delete(ids ...catalog.ID) error {
	if len(ids) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for _, id := range ids {
			if err := b.Delete(recordKey(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// AliveAt returns when this host last knew it was in touch with its cluster; ok is
// false if it never recorded it.
func (s *Store) AliveAt() (t time.Time, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyAliveAt)
		if len(v) != 8 {
			return nil
		}
		ok = true
		t = time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
		return nil
	})
	return t, ok, err
}

// SaveAliveAt records that the host was in touch with its cluster at t.
func (s *Store) SaveAliveAt(t time.Time) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(t.Unix()))
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyAliveAt, v[:]) })
}

// Load returns every stored record. A record that does not decode or validate is an
// error: a damaged data file must be noticed, not silently shrink the catalog.
func (s *Store) Load() ([]*catalog.Record, error) {
	var out []*catalog.Record
	err := s.LoadEach(loadBatch, func(rs []*catalog.Record) { out = append(out, rs...) })
	return out, err
}

// loadBatch is how many records LoadEach decodes per read transaction.
const loadBatch = 20_000

// LoadEach hands every stored record to f, at most batch at a time and in key order,
// so that a caller that keeps them in another form (the catalog) never holds all of
// them decoded at once: with a million records that is the difference between the
// catalog's size and several times it. f runs outside any transaction and may keep
// the records. A record that does not decode or validate is a *CorruptError, after
// the batches before it were handed over.
func (s *Store) LoadEach(batch int, f func([]*catalog.Record)) error {
	var after []byte // last key handed over; nil: start at the first
	for {
		var rs []*catalog.Record
		var next []byte
		_, err := guard(func() (struct{}, error) { return struct{}{}, s.loadFrom(after, batch, &rs, &next) })
		if err != nil {
			return &CorruptError{Path: s.db.Path(), Cause: err.Error()}
		}
		if len(rs) > 0 {
			f(rs)
		}
		if next == nil {
			return nil
		}
		after = next
	}
}

// loadFrom decodes up to batch records with keys after after (all from the first
// when after is nil); next is the last key read when more may follow.
func (s *Store) loadFrom(after []byte, batch int, out *[]*catalog.Record, next *[]byte) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			r, err := decodeValue(v)
			if err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			if err := r.Validate(); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			*out = append(*out, r)
			if len(*out) == batch {
				*next = append([]byte(nil), k...) // k is only valid inside the transaction
				return nil
			}
		}
		return nil
	})
}

// decodeValue reads a stored record: the binary encoding (catalog.AppendRecord),
// or JSON, which data dirs written before it hold (its first byte is '{', which
// never starts the binary form).
func decodeValue(v []byte) (*catalog.Record, error) {
	if len(v) > 0 && v[0] == '{' {
		return decodeJSON(v)
	}
	r, n, err := catalog.DecodeRecord(v)
	if err != nil {
		return nil, err
	}
	if n != len(v) {
		return nil, fmt.Errorf("%d bytes after the record", len(v)-n)
	}
	return r, nil
}

// Backup writes a consistent copy of the database to w while the agent keeps running.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
