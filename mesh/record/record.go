package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
)

// Stamp is a Lamport timestamp: a logical clock plus the writing host's id to break ties.
type Stamp struct {
	Clock uint64 `json:"c"`
	Node  uint32 `json:"n"`
}

// Compare orders stamps: clock first, then node id.
func (a Stamp) Compare(b Stamp) int {
	switch {
	case a.Clock < b.Clock:
		return -1
	case a.Clock > b.Clock:
		return 1
	case a.Node < b.Node:
		return -1
	case a.Node > b.Node:
		return 1
	}
	return 0
}

func (a Stamp) IsZero() bool { return a == Stamp{} }

// Record is the unit of replication: one object plus the metadata that decides merges.
//
// Merge order (Wins) is total, so every host converges on the same winner whatever
// order records arrive in:
//  1. higher Gen wins — a create that saw a tombstone for its key starts the next
//     generation, so a deleted name can be created again;
//  2. within a generation, the lower Created stamp wins — first writer wins, which is
//     how two concurrent creates of one name pick their deterministic winner;
//  3. within one identity (same Gen and Created), a tombstone beats every live version
//     (deletes are final), then the higher Version wins.
type Record struct {
	Kind    Kind   `json:"k"`
	Key     string `json:"key"`
	Gen     uint32 `json:"g"`
	Created Stamp  `json:"cr"`
	Version Stamp  `json:"v"`
	Deleted bool   `json:"d,omitempty"`
	// DeletedAt is when a tombstone was written (Unix seconds, the deleting host's
	// clock). Tombstones are collected a horizon (--tombstone-ttl) after it; it is not
	// part of the header, so it never splits digests.
	DeletedAt int64 `json:"da,omitempty"`

	Host    *Host      `json:"host,omitempty"`
	Org     *Org       `json:"org,omitempty"`
	Network *Network   `json:"network,omitempty"`
	App     *App       `json:"app,omitempty"`
	Machine *Machine   `json:"machine,omitempty"`
	Peer    *Peer      `json:"peer,omitempty"`
	DNS     *DNSRecord `json:"dns,omitempty"`
}

// ID identifies a record across the cluster.
type ID struct {
	Kind Kind
	Key  string
}

func (id ID) String() string { return id.Kind.String() + "/" + id.Key }

// ID returns the record's identity.
func (r *Record) ID() ID { return ID{r.Kind, r.Key} }

// SameIdentity reports whether both records describe the same create (one object's history).
func (r *Record) SameIdentity(o *Record) bool { return r.Gen == o.Gen && r.Created == o.Created }

// Compare returns >0 when r beats o under the merge order, <0 when o beats r, 0 when equal.
func (r *Record) Compare(o *Record) int {
	if r.Gen != o.Gen {
		if r.Gen > o.Gen {
			return 1
		}
		return -1
	}
	if c := r.Created.Compare(o.Created); c != 0 {
		return -c
	}
	// A delete is final for its identity: no update of the same create, however late
	// its stamp, brings the object back (a removed host that restarts, an owner that
	// writes a machine another host retired). Recreating takes a new generation.
	if r.Deleted != o.Deleted {
		if r.Deleted {
			return 1
		}
		return -1
	}
	return r.Version.Compare(o.Version)
}

// Wins reports whether r should replace o.
func (r *Record) Wins(o *Record) bool { return o == nil || r.Compare(o) > 0 }

// Header is a record without its body: what anti-entropy compares.
type Header struct {
	Kind    Kind   `json:"k"`
	Key     string `json:"key"`
	Gen     uint32 `json:"g"`
	Created Stamp  `json:"cr"`
	Version Stamp  `json:"v"`
	Deleted bool   `json:"d,omitempty"`
}

// Header returns the record's header.
func (r *Record) Header() Header {
	return Header{r.Kind, r.Key, r.Gen, r.Created, r.Version, r.Deleted}
}

// Record returns a body-less record with the header's ordering fields.
func (h Header) Record() *Record {
	return &Record{Kind: h.Kind, Key: h.Key, Gen: h.Gen, Created: h.Created, Version: h.Version, Deleted: h.Deleted}
}

// Hash is a stable 64-bit digest of a header; digests XOR them, so it must not depend
// on anything but the header.
func (h Header) Hash() uint64 {
	f := fnv.New64a()
	var b [8 + 4 + 12 + 12 + 1]byte
	b[0] = byte(h.Kind)
	binary.BigEndian.PutUint32(b[1:5], h.Gen)
	binary.BigEndian.PutUint64(b[5:13], h.Created.Clock)
	binary.BigEndian.PutUint32(b[13:17], h.Created.Node)
	binary.BigEndian.PutUint64(b[17:25], h.Version.Clock)
	binary.BigEndian.PutUint32(b[25:29], h.Version.Node)
	if h.Deleted {
		b[29] = 1
	}
	f.Write(b[:30])
	f.Write([]byte(h.Key))
	return f.Sum64()
}

// Buckets is the number of anti-entropy digest buckets. Fixed: every host must agree.
const Buckets = 256

// Bucket is the digest bucket a key falls in.
func Bucket(id ID) int {
	f := fnv.New32a()
	f.Write([]byte{byte(id.Kind)})
	f.Write([]byte(id.Key))
	return int(f.Sum32() % Buckets)
}

// SubBuckets is the fan-out of the second digest level: each bucket splits into this
// many leaves, so anti-entropy narrows a difference to ~1/65536 of the catalog before
// it exchanges any headers.
const SubBuckets = 256

// Leaf is the digest leaf (bucket*SubBuckets + sub-bucket) of a record id.
func Leaf(id ID) int {
	h := fnvID(id)
	return Bucket(id)*SubBuckets + int((h>>8)%SubBuckets)
}

func fnvID(id ID) uint64 {
	// FNV-1a 64 inline: a second, independent hash of the id for the sub-bucket.
	h := uint64(14695981039346656037)
	h = (h ^ uint64(id.Kind)) * 1099511628211
	for i := 0; i < len(id.Key); i++ {
		h = (h ^ uint64(id.Key[i])) * 1099511628211
	}
	return h
}

// Validate checks a record from the wire or disk: known kind, key consistent with body,
// a body for live records. Gossip input that fails is dropped and counted.
func (r *Record) Validate() error {
	if !r.Kind.Valid() {
		return fmt.Errorf("unknown record kind %d", r.Kind)
	}
	if r.Key == "" || len(r.Key) > 255 {
		return errors.New("record key empty or too long")
	}
	if r.Version.IsZero() || r.Created.IsZero() {
		return errors.New("record without stamps")
	}
	bodies := 0
	for _, set := range []bool{r.Host != nil, r.Org != nil, r.Network != nil, r.App != nil, r.Machine != nil, r.Peer != nil, r.DNS != nil} {
		if set {
			bodies++
		}
	}
	if bodies > 1 {
		return errors.New("record with several bodies")
	}
	if r.Deleted {
		return nil // tombstones may keep or drop their body
	}
	if bodies == 0 {
		return fmt.Errorf("%s record %q without body", r.Kind, r.Key)
	}
	want := ""
	switch r.Kind {
	case KindHost:
		if r.Host == nil {
			return errors.New("host record without host body")
		}
		want = r.Host.Name
		if r.Host.ID == 0 {
			return errors.New("host id 0")
		}
	case KindOrg:
		if r.Org == nil {
			return errors.New("org record without org body")
		}
		want = r.Org.Slug
	case KindNetwork:
		if r.Network == nil {
			return errors.New("network record without network body")
		}
		want = NetworkKey(r.Network.Org, r.Network.Name)
		if r.Network.ID == 0 {
			return errors.New("network id 0")
		}
	case KindApp:
		if r.App == nil {
			return errors.New("app record without app body")
		}
		want = AppKey(r.App.Org, r.App.Name)
	case KindMachine:
		if r.Machine == nil {
			return errors.New("machine record without machine body")
		}
		want = r.Machine.ID
		if !r.Machine.Address.IsValid() {
			return errors.New("machine without address")
		}
		if r.Machine.MachinePlace == nil || r.Machine.MachineAttrs == nil {
			// Every writer sets both (JSON always spells their fields); code that
			// reads a machine's app or state may rely on it.
			return errors.New("machine without placement or attributes")
		}
	case KindPeer:
		if r.Peer == nil {
			return errors.New("peer record without peer body")
		}
		want = PeerKey(r.Peer.Org, r.Peer.Name)
		if !r.Peer.Address.IsValid() {
			return errors.New("peer without address")
		}
	case KindDNSRecord:
		if r.DNS == nil {
			return errors.New("dns record without dns body")
		}
		if err := r.DNS.check(r.Key); err != nil {
			return err
		}
		want = r.Key
	}
	if want != r.Key {
		return fmt.Errorf("%s record key %q does not match body %q", r.Kind, r.Key, want)
	}
	return nil
}

// NetworkKey is a network record's key.
func NetworkKey(org, name string) string { return org + "/" + name }

// AppKey is an app record's key: app names are unique within their org.
func AppKey(org, name string) string { return org + "/" + name }

// PeerKey is a peer record's key.
func PeerKey(org, name string) string { return org + "/" + name }

// ID returns the header's record identity.
func (h Header) ID() ID { return ID{h.Kind, h.Key} }
