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
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// SchemaVersion is bumped on incompatible layout changes.
const SchemaVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	keyMagic      = []byte("magic")
	keySchema     = []byte("schema")
	keyIdentity   = []byte("identity")
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
	db *bolt.DB
}

// Open opens (creating if needed) dir/dogwood.db.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, "dogwood.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("%s: not a readable dogwood data file: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
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
			var v [4]byte
			binary.BigEndian.PutUint32(v[:], SchemaVersion)
			if err := meta.Put(keySchema, v[:]); err != nil {
				return err
			}
		}
		if string(meta.Get(keyMagic)) != string(magic) {
			return errors.New("not a dogwood data file")
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return errors.New("data file without schema version")
		}
		if got := binary.BigEndian.Uint32(v); got != SchemaVersion {
			return fmt.Errorf("data file schema version %d, this dogwood reads %d", got, SchemaVersion)
		}
		_, err := tx.CreateBucketIfNotExists(bucketRecords)
		return err
	})
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Identity returns the stored identity; ok is false on a fresh data dir.
func (s *Store) Identity() (id Identity, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyIdentity)
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &id)
	})
	if err != nil {
		err = fmt.Errorf("stored identity: %w", err)
	}
	return id, ok, err
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
	enc := make([][]byte, len(rs))
	for i, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		enc[i] = b
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for i, r := range rs {
			if err := b.Put(recordKey(r.ID()), enc[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load returns every stored record. A record that does not decode or validate is an
// error: a damaged data file must be noticed, not silently shrink the catalog.
func (s *Store) Load() ([]*catalog.Record, error) {
	var out []*catalog.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			r := &catalog.Record{}
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			if err := r.Validate(); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
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
