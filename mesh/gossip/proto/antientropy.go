package proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/dogwood/dogwood/mesh/record"
)

// Store is what anti-entropy compares and reads: *record.Catalog. Repaired records
// come back to the caller as AERecords messages; applying them is the caller's job
// (it also persists them).
type Store interface {
	Digest() (root uint64, buckets [record.Buckets]uint64)
	SubDigests(buckets []int) [][]uint64
	LeafHeaders(leaves []int) []record.Header
	Records(ids []record.ID) []*record.Record
}

// Anti-entropy messages. The network layer adds who sent them. An exchange narrows a
// difference level by level — root, bucket digests, leaf digests, record headers —
// so its cost follows what differs, not the size of the catalog.
type (
	// AERoot opens an exchange: "my digest is Root".
	AERoot struct {
		Root uint64 `json:"root"`
	}
	// AEBuckets answers a different root with every bucket digest.
	AEBuckets struct {
		Buckets Digests `json:"buckets"`
	}
	// AESubs carries the leaf digests of the buckets that differ.
	AESubs struct {
		Buckets []int    `json:"buckets"`
		Subs    [][]byte `json:"subs"` // per bucket, SubBuckets big-endian uint64 digests
	}
	// AEHeaders carries the headers of the records in the leaves that differ.
	AEHeaders struct {
		Leaves  []int           `json:"leaves"`
		Headers []record.Header `json:"headers"`
	}
	// AEWant asks for records by id.
	AEWant struct {
		IDs []record.ID `json:"ids"`
	}
	// AERecords carries records that win over what the receiver has.
	AERecords struct {
		Records []*record.Record
	}
)

// AESend is a message the caller must deliver to host To. Msg is one of the AE*
// message types (by pointer).
type AESend struct {
	To  string
	Msg any
}

// ErrMalformedAE is returned for anti-entropy input that breaks the protocol.
var ErrMalformedAE = errors.New("malformed anti-entropy message")

// RecordBatch bounds one records message so no single message grows with the catalog.
const RecordBatch = 500

// AntiEntropy is one host's side of the digest exchange. It is not safe for
// concurrent use; the caller serializes calls (the Store may be shared).
type AntiEntropy struct {
	store Store
	// dedupe is how long an exchange with one peer suppresses another: a rejoining
	// host triggers several (join event, push/pull, the periodic round) and each
	// would resend the same missing records.
	dedupe  time.Duration
	started map[string]time.Time
	out     []AESend

	lastChange time.Time
	returned   time.Time
	skipped    int
}

// Quiet rounds: while changes keep arriving on the broadcast tree, catalogs differ by
// whatever is in flight, and a periodic round would exchange bucket and leaf digests
// for nothing the tree is not already delivering. A host skips its periodic round if
// a change arrived within quietFor, but never more than maxSkips rounds in a row, so
// under a steady stream anti-entropy still runs every few seconds.
const (
	quietFor = time.Second
	maxSkips = 4
)

// returnRounds is how long after a member's return anti-entropy runs every round,
// at a quarter of its period.
const returnRounds = 5 * time.Second

// NoteChange records that a change arrived or was made (the tree delivered it).
func (a *AntiEntropy) NoteChange(now time.Time) { a.lastChange = now }

// NoteReturn records that a member came back: a failed host, or the other side of
// a healed partition. What either side made meanwhile travels by exchanges only;
// each exchange brings the union of two hosts, so it spreads epidemically, in
// rounds. With rounds at the usual period, and skipped while grafts and late copies
// still arrive on the tree, a simulated 2,000-host fleet converged 10.5 s after a
// heal; at a quarter of the period and never skipped, 2 s.
func (a *AntiEntropy) NoteReturn(now time.Time) { a.returned = now }

func (a *AntiEntropy) repairing(now time.Time) bool {
	return !a.returned.IsZero() && now.Sub(a.returned) < returnRounds
}

// Period is the time to the next periodic round for a base interval: a quarter of
// it for returnRounds after a return (NoteReturn).
func (a *AntiEntropy) Period(now time.Time, base time.Duration) time.Duration {
	if a.repairing(now) {
		return base / 4
	}
	return base
}

// Due reports whether the periodic round should run now.
func (a *AntiEntropy) Due(now time.Time) bool {
	if a.repairing(now) {
		a.skipped = 0
		return true
	}
	if now.Sub(a.lastChange) < quietFor && a.skipped < maxSkips {
		a.skipped++
		return false
	}
	a.skipped = 0
	return true
}

// ReturnFanout is how many exchanges, fleet-wide and on average, one member's
// return starts at once (ExchangeOnReturn).
const ReturnFanout = 3

// ExchangeOnReturn reports whether a host that sees a member come back (failed,
// now alive again) opens an exchange with it right away; alive is how many
// members it sees and roll a uniform draw in [0, 1). Every member sees the
// return, and with only the lower name of each pair opening one, the heal of a
// partition between sides of a and b hosts cost a·b/2 exchanges at once:
// quadratic in the fleet, about 11 million at 10,000 hosts. A host opens one with
// probability 2·ReturnFanout/alive instead (the lower-name rule halves it): one
// host's return gets about ReturnFanout exchanges, and after a partition every
// host has one or two with hosts of the other side, each of which brings it
// everything that side made. Small clusters (alive ≤ 2·ReturnFanout) keep an
// exchange per returning member.
func ExchangeOnReturn(alive int, roll float64) bool {
	return roll*float64(alive) < 2*ReturnFanout
}

// NewAntiEntropy returns the exchange over store; dedupe 0 means 2s.
func NewAntiEntropy(store Store, dedupe time.Duration) *AntiEntropy {
	if dedupe <= 0 {
		dedupe = 2 * time.Second
	}
	return &AntiEntropy{store: store, dedupe: dedupe, started: map[string]time.Time{}}
}

// Start opens an exchange with peer unless one was opened within the dedupe window.
func (a *AntiEntropy) Start(now time.Time, peer string) bool {
	if t, ok := a.started[peer]; ok && now.Sub(t) < a.dedupe {
		return false
	}
	if len(a.started) > 1024 {
		for p, t := range a.started {
			if now.Sub(t) >= a.dedupe {
				delete(a.started, p)
			}
		}
	}
	a.started[peer] = now
	root, _ := a.store.Digest()
	a.send(peer, &AERoot{Root: root})
	return true
}

func (a *AntiEntropy) send(to string, m any) { a.out = append(a.out, AESend{To: to, Msg: m}) }

// Root reports our digest root (for memberlist's push/pull state).
func (a *AntiEntropy) Root() uint64 {
	r, _ := a.store.Digest()
	return r
}

// Receive handles one anti-entropy message from host from. It returns an error for
// input that breaks the protocol (the caller drops and counts it).
func (a *AntiEntropy) Receive(from string, msg any) error {
	switch m := msg.(type) {
	case *AERoot:
		root, buckets := a.store.Digest()
		if root != m.Root {
			a.send(from, &AEBuckets{Buckets: buckets})
		}
	case *AEBuckets:
		_, mine := a.store.Digest()
		var diff []int
		for i := range mine {
			if mine[i] != m.Buckets[i] {
				diff = append(diff, i)
			}
		}
		if len(diff) == 0 {
			return nil
		}
		subs := a.store.SubDigests(diff)
		enc := make([][]byte, len(subs))
		for i, s := range subs {
			enc[i] = make([]byte, 8*len(s))
			for j, v := range s {
				binary.BigEndian.PutUint64(enc[i][8*j:], v)
			}
		}
		a.send(from, &AESubs{Buckets: diff, Subs: enc})
	case *AESubs:
		return a.onSubs(from, m)
	case *AEHeaders:
		return a.onHeaders(from, m)
	case *AEWant:
		a.sendRecords(from, m.IDs)
	default:
		return ErrMalformedAE
	}
	return nil
}

// onSubs narrows differing buckets to differing leaves and sends our headers there.
func (a *AntiEntropy) onSubs(from string, m *AESubs) error {
	if len(m.Subs) != len(m.Buckets) {
		return ErrMalformedAE
	}
	for i, b := range m.Buckets {
		if b < 0 || b >= record.Buckets || len(m.Subs[i]) != 8*record.SubBuckets {
			return ErrMalformedAE
		}
	}
	mine := a.store.SubDigests(m.Buckets)
	var leaves []int
	for i, b := range m.Buckets {
		for j := 0; j < record.SubBuckets; j++ {
			if binary.BigEndian.Uint64(m.Subs[i][8*j:]) != mine[i][j] {
				leaves = append(leaves, b*record.SubBuckets+j)
			}
		}
	}
	if len(leaves) > 0 {
		a.send(from, &AEHeaders{Leaves: leaves, Headers: a.store.LeafHeaders(leaves)})
	}
	return nil
}

// onHeaders finishes the comparison: we know both sides' headers for the differing
// leaves, so we send what we have that wins and ask for what they have that wins.
func (a *AntiEntropy) onHeaders(from string, m *AEHeaders) error {
	mine := map[record.ID]record.Header{}
	for _, h := range a.store.LeafHeaders(m.Leaves) {
		mine[h.ID()] = h
	}
	var want, give []record.ID
	var bad error
	for _, th := range m.Headers {
		if !th.Kind.Valid() {
			bad = ErrMalformedAE
			continue
		}
		id := th.ID()
		mh, ok := mine[id]
		delete(mine, id)
		switch {
		case !ok:
			want = append(want, id)
		case th.Record().Wins(mh.Record()):
			want = append(want, id)
		case mh.Record().Wins(th.Record()):
			give = append(give, id)
		}
	}
	for id := range mine {
		give = append(give, id)
	}
	sort.Slice(give, func(i, j int) bool {
		return give[i].Kind < give[j].Kind || give[i].Kind == give[j].Kind && give[i].Key < give[j].Key
	})
	if len(want) > 0 {
		a.send(from, &AEWant{IDs: want})
	}
	a.sendRecords(from, give)
	return bad
}

func (a *AntiEntropy) sendRecords(to string, ids []record.ID) {
	for len(ids) > 0 {
		n := min(len(ids), RecordBatch)
		rs := a.store.Records(ids[:n])
		ids = ids[n:]
		if len(rs) == 0 {
			continue
		}
		a.send(to, &AERecords{Records: rs})
	}
}

// Outbox returns and clears the messages queued since the last call.
func (a *AntiEntropy) Outbox() []AESend {
	out := a.out
	a.out = nil
	return out
}

// Digests are the bucket digests, encoded as base64 of big-endian bytes (2.7 KB in
// JSON instead of about 5 KB as numbers).
type Digests [record.Buckets]uint64

// MarshalJSON encodes the digests as base64 bytes.
func (d Digests) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(d))
	for i, v := range d {
		binary.BigEndian.PutUint64(b[8*i:], v)
	}
	return json.Marshal(b)
}

// UnmarshalJSON decodes what MarshalJSON wrote; any other length is an error.
func (d *Digests) UnmarshalJSON(data []byte) error {
	var b []byte
	if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b) != 8*len(d) {
		return ErrMalformedAE
	}
	for i := range d {
		d[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return nil
}
