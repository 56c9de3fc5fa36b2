package proto

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"time"
)

// Kind is a tree message's type.
type Kind uint8

const (
	// KindGossip carries a payload, pushed eagerly along the tree.
	KindGossip Kind = 1
	// KindIHave announces ids lazily on links outside the tree.
	KindIHave Kind = 2
	// KindGraft asks for ids and makes the link part of the tree.
	KindGraft Kind = 3
	// KindPrune takes the link out of the tree (it delivered a duplicate).
	KindPrune Kind = 4
	// KindJoin tells a host it was picked as a neighbor, so links are symmetric. Its
	// payload is opaque to the tree (the network layer puts the sender's address
	// there, for a host that hears of it before membership does).
	KindJoin Kind = 5
	// KindBatch carries several Gossip messages to one neighbor in one packet (see
	// TreeConfig.EagerInterval). The receiver hands each to Receive.
	KindBatch Kind = 6

	// The compact kinds (TreeConfig.Compact) carry the same protocol in fewer
	// bytes. A release before them cannot decode them (it drops them as malformed),
	// so a tree sends them only when told every member reads them.

	// KindPack is a Batch whose entries carry no id: a change's id in compact mode is
	// ContentID of its payload, which the receiver derives. Entries: round and
	// payload length as uvarints, then the payload. Decode returns a KindPack
	// message whose Batch holds KindGossip messages with their ids filled in.
	KindPack Kind = 7
	// KindIHaveShort and KindGraftShort are IHave and Graft with 3-byte digests of
	// ids (ShortID) after a uvarint count. A digest that matches a change the
	// receiver has is taken for it: with a minute of changes at 100/s (6,000 ids
	// kept), a missing change is mistaken for a present one about once in 2,800,
	// and anti-entropy repairs that one.
	KindIHaveShort Kind = 8
	KindGraftShort Kind = 9
)

// ContentID is a change's id in compact mode: FNV-64a of its payload. Payloads
// carry records with their version stamps, so two changes never share one.
func ContentID(payload []byte) uint64 {
	h := fnv.New64a()
	h.Write(payload)
	return h.Sum64()
}

// ShortID is the digest of an id that compact announcements and grafts carry: its
// low 24 bits.
func ShortID(id uint64) uint32 { return uint32(id) & shortMask }

const shortMask = 1<<24 - 1

// Entries returns the Gossip messages a message carries: a batch's entries, or the
// message itself.
func (m *Message) Entries() []Message {
	if m.Kind == KindBatch || m.Kind == KindPack {
		return m.Batch
	}
	return []Message{*m}
}

// Message is one tree message. Which fields are used depends on Kind.
type Message struct {
	Kind    Kind
	ID      uint64    // Gossip
	Round   uint16    // Gossip: hops from the source
	IDs     []uint64  // IHave, Graft
	Payload []byte    // Gossip, Join
	Batch   []Message // Batch: Gossip messages
}

// Size is the encoded length in bytes.
func (m *Message) Size() int {
	switch m.Kind {
	case KindGossip:
		return 1 + 8 + 2 + len(m.Payload)
	case KindIHave, KindGraft:
		return 1 + 2 + 8*len(m.IDs)
	case KindJoin:
		return 1 + len(m.Payload)
	case KindBatch:
		n := 1 + uvarintLen(uint64(len(m.Batch)))
		for _, g := range m.Batch {
			n += batchEntrySize(&g)
		}
		return n
	case KindPack:
		n := 1 + uvarintLen(uint64(len(m.Batch)))
		for _, g := range m.Batch {
			n += packEntrySize(&g)
		}
		return n
	case KindIHaveShort, KindGraftShort:
		return 1 + uvarintLen(uint64(len(m.IDs))) + 3*len(m.IDs)
	}
	return 1
}

// A pack entry: round (varint), payload length (varint), payload.
func packEntrySize(g *Message) int {
	return uvarintLen(uint64(g.Round)) + uvarintLen(uint64(len(g.Payload))) + len(g.Payload)
}

// A batch entry: id (8 bytes), round (varint), payload length (varint), payload.
func batchEntrySize(g *Message) int {
	return 8 + uvarintLen(uint64(g.Round)) + uvarintLen(uint64(len(g.Payload))) + len(g.Payload)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// Append appends the binary encoding of m to b.
func (m *Message) Append(b []byte) []byte {
	b = append(b, byte(m.Kind))
	switch m.Kind {
	case KindGossip:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = binary.BigEndian.AppendUint16(b, m.Round)
		b = append(b, m.Payload...)
	case KindIHave, KindGraft:
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.IDs)))
		for _, id := range m.IDs {
			b = binary.BigEndian.AppendUint64(b, id)
		}
	case KindJoin:
		b = append(b, m.Payload...)
	case KindBatch:
		b = binary.AppendUvarint(b, uint64(len(m.Batch)))
		for _, g := range m.Batch {
			b = binary.BigEndian.AppendUint64(b, g.ID)
			b = binary.AppendUvarint(b, uint64(g.Round))
			b = binary.AppendUvarint(b, uint64(len(g.Payload)))
			b = append(b, g.Payload...)
		}
	case KindPack:
		b = binary.AppendUvarint(b, uint64(len(m.Batch)))
		for _, g := range m.Batch {
			b = binary.AppendUvarint(b, uint64(g.Round))
			b = binary.AppendUvarint(b, uint64(len(g.Payload)))
			b = append(b, g.Payload...)
		}
	case KindIHaveShort, KindGraftShort:
		b = binary.AppendUvarint(b, uint64(len(m.IDs)))
		for _, id := range m.IDs {
			d := ShortID(id)
			b = append(b, byte(d>>16), byte(d>>8), byte(d))
		}
	}
	return b
}

// ErrMalformed is returned for input that is not a tree message.
var ErrMalformed = errors.New("malformed tree message")

// Decode parses a tree message. The payload aliases b.
func Decode(b []byte) (Message, error) {
	if len(b) == 0 {
		return Message{}, ErrMalformed
	}
	m := Message{Kind: Kind(b[0])}
	b = b[1:]
	switch m.Kind {
	case KindGossip:
		if len(b) < 10 {
			return Message{}, ErrMalformed
		}
		m.ID = binary.BigEndian.Uint64(b)
		m.Round = binary.BigEndian.Uint16(b[8:])
		m.Payload = b[10:]
	case KindIHave, KindGraft:
		if len(b) < 2 {
			return Message{}, ErrMalformed
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if n == 0 || len(b) != 8*n {
			return Message{}, ErrMalformed
		}
		m.IDs = make([]uint64, n)
		for i := range m.IDs {
			m.IDs[i] = binary.BigEndian.Uint64(b[8*i:])
		}
	case KindJoin:
		m.Payload = b
	case KindPrune:
		if len(b) != 0 {
			return Message{}, ErrMalformed
		}
	case KindBatch, KindPack:
		var err error
		if m.Batch, err = decodeEntries(b, m.Kind == KindBatch); err != nil {
			return Message{}, err
		}
	case KindIHaveShort, KindGraftShort:
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > maxIDs || uint64(len(b)-k) != 3*n {
			return Message{}, ErrMalformed
		}
		b = b[k:]
		m.IDs = make([]uint64, n)
		for i := range m.IDs {
			m.IDs[i] = uint64(b[3*i])<<16 | uint64(b[3*i+1])<<8 | uint64(b[3*i+2])
		}
	default:
		return Message{}, ErrMalformed
	}
	return m, nil
}

// decodeEntries reads the entries of a Batch (withID) or a Pack.
func decodeEntries(b []byte, withID bool) ([]Message, error) {
	// An entry takes at least 10 bytes in a batch (id, round, length) and 3 in a
	// pack (round, length, a byte of payload): a count beyond that is a lie and must
	// not size an allocation.
	least := 3
	if withID {
		least = 10
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > uint64(len(b)/least) {
		return nil, ErrMalformed
	}
	b = b[k:]
	out := make([]Message, 0, n)
	for range n {
		g := Message{Kind: KindGossip}
		if withID {
			if len(b) < 8 {
				return nil, ErrMalformed
			}
			g.ID = binary.BigEndian.Uint64(b)
			b = b[8:]
		}
		r, k := binary.Uvarint(b)
		if k <= 0 || r > 0xffff {
			return nil, ErrMalformed
		}
		g.Round = uint16(r)
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) || (!withID && l == 0) {
			return nil, ErrMalformed
		}
		g.Payload = b[k : k+int(l)]
		b = b[k+int(l):]
		if !withID {
			g.ID = ContentID(g.Payload)
		}
		out = append(out, g)
	}
	if len(b) != 0 {
		return nil, ErrMalformed
	}
	return out, nil
}

// Send is a message the caller must deliver to host To.
type Send struct {
	To  string
	Msg Message
}

// TreeConfig tunes a Tree; zero values take the defaults.
type TreeConfig struct {
	Self string
	// Degree is how many neighbors a host picks itself (default 3). Others pick it
	// too, so a host has about 2*Degree neighbors; the random graph they form stays
	// connected with high probability at any fleet size.
	Degree int
	// LazyInterval is how often a busy link sends announcements, batched (default
	// 200ms, 500ms in compact mode: on a laid-out tree they only serve repair, and a
	// longer interval puts more ids in each packet); a quiet link sends after a
	// quarter of it.
	LazyInterval time.Duration
	// GraftTimeout is how long an announced id may stay missing before we graft
	// the link that announced it, and then again per announcer (default 300ms: a
	// lazy neighbor can be several tree hops closer to the source, and every graft
	// that beats the tree copy costs a second copy).
	GraftTimeout time.Duration
	// GraftWait, when set, shortens GraftTimeout for an id announced by peer (a
	// result of 0 or above GraftTimeout means GraftTimeout): the agent derives it
	// from measured round-trip times, so a host on a fast network asks for a lost
	// change after a few round trips instead of a timeout sized for slow links.
	GraftWait func(peer string) time.Duration
	// EagerInterval, when set, sends eager copies to a neighbor at most once per
	// interval: a copy for a link that sent within the interval waits, with any
	// others, and they leave as one Batch. At 100 changes/s a tree link carries a
	// change every 10 ms, and each packet costs about 90 bytes of seal, encryption
	// and headers on top of a ~120-byte change; a copy on a quiet link goes at
	// once, so a lone change is not delayed (Nagle's rule). Default 20ms (70ms in
	// compact mode); negative sends every copy at once.
	EagerInterval time.Duration
	// Keep is how long received ids and payloads are remembered, to answer
	// grafts and recognise duplicates (default 60s).
	Keep time.Duration
	// MaxRounds drops a message after this many hops (default 64).
	MaxRounds int
	// Compact sends the compact kinds (KindPack, KindIHaveShort, KindGraftShort)
	// and gives published changes content ids. Off by default: only when every
	// member of the cluster can read them (SetCompact switches it at run time, when
	// membership says so). Received compact messages are read either way.
	Compact    bool
	PickedOnly bool
	// Seed makes neighbor choice reproducible.
	Seed int64
}

// TreeStats counts what a Tree did, for metrics and the simulator.
type TreeStats struct {
	Delivered, Duplicates, Grafts, Prunes, Missed uint64
	// GraftIDs is ids asked for in grafts; Answered is payloads sent in reply.
	GraftIDs, Answered uint64
}

type stored struct {
	payload []byte
	round   uint16
}

type missing struct {
	deadline time.Time
	// announced is every link that announced the id, in order: the ones to ask,
	// and, since they have it, not to announce it back to when it arrives.
	announced []string
	grafts    int // rounds of grafts sent for it
}

// graftRounds is how many rounds of grafts a missing id gets before it is left to
// anti-entropy: the first asks the first announcer, the others every announcer at
// once. Asking one announcer after another, a lost graft or a lost answer used one
// up; at 10,000 simulated hosts with 1 % loss a host with two announcers lost a
// pack, the answer to its first graft and its second graft, and had the pack's
// changes from anti-entropy 1.7 s after the loss.
const graftRounds = 3

// Tree is one host's Plumtree state. It is not safe for concurrent use; the caller
// serializes calls.
type Tree struct {
	cfg    TreeConfig
	rng    *rand.Rand
	eager  map[string]bool
	lazy   map[string]bool
	picked map[string]bool // neighbors we chose (they count against Degree)
	// fixed: the eager links come from a Ring (SetLinks), not from message timing;
	// duplicates do not prune and grafts only fetch.
	fixed bool

	seen map[uint64]stored
	// short finds a seen id by its ShortID (compact announcements and grafts).
	short   map[uint32]uint64
	order   []seenAt // ids by arrival, for expiry
	missing map[uint64]*missing
	lazyQ   map[string][]uint64
	// lastLazy is when each link last sent announcements (LazyInterval).
	lastLazy map[string]time.Time
	// links decides when eager copies leave; out holds what leaves.
	links eagerLinks
	out   outbox
	seq   uint64
	Stats TreeStats
	// The intervals the caller left to us follow the mode (SetCompact).
	lazyDefault, eagerDefault bool
}

// Default intervals. Compact mode spends a little latency on bytes: eager copies
// wait up to 70 ms for company (about seven changes share a packet's 90-byte
// overhead at 100 changes/s instead of two) and announcements go every 500 ms.
const (
	defaultEagerInterval = 20 * time.Millisecond
	defaultLazyInterval  = 200 * time.Millisecond
	compactEagerInterval = 70 * time.Millisecond
	compactLazyInterval  = 500 * time.Millisecond
)

type seenAt struct {
	id uint64
	at time.Time
}

// NewTree returns an empty tree for cfg.Self.
func NewTree(cfg TreeConfig) *Tree {
	if cfg.Degree <= 0 {
		cfg.Degree = 3
	}
	lazyDefault := cfg.LazyInterval <= 0
	if cfg.GraftTimeout <= 0 {
		cfg.GraftTimeout = 300 * time.Millisecond
	}
	eagerDefault := cfg.EagerInterval == 0
	if cfg.Keep <= 0 {
		cfg.Keep = 60 * time.Second
	}
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = 64
	}
	t := &Tree{
		lazyDefault: lazyDefault, eagerDefault: eagerDefault,
		cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)),
		eager: map[string]bool{}, lazy: map[string]bool{}, picked: map[string]bool{},
		seen: map[uint64]stored{}, short: map[uint32]uint64{}, missing: map[uint64]*missing{}, lazyQ: map[string][]uint64{},
		lastLazy: map[string]time.Time{},
	}
	t.out = outbox{cfg: &t.cfg, leaving: map[string]int{}}
	t.links = eagerLinks{cfg: &t.cfg, out: &t.out, queued: map[string]*eagerBatch{},
		lastPush: map[string]time.Time{}, lastCopy: map[string]time.Time{}, gap: map[string]time.Duration{}}
	t.SetCompact(cfg.Compact)
	return t
}

// SetLinks fixes the tree's eager links to links (a host's Ring.Links): from then
// on changes travel along them only, duplicates prune nothing and grafts only fetch
// what is missing. The randomly picked neighbors (AddPeers) stay as lazy links that
// announce ids, for repair.
func (t *Tree) SetLinks(links []string) {
	t.fixed = true
	next := make(map[string]bool, len(links))
	for _, l := range links {
		if l != t.cfg.Self {
			next[l] = true
		}
	}
	for p := range t.eager {
		if !next[p] {
			delete(t.eager, p)
			if t.picked[p] {
				t.lazy[p] = true
			}
		}
	}
	for p := range next {
		delete(t.lazy, p)
		t.eager[p] = true
	}
}

// SetEagerInterval changes TreeConfig.EagerInterval (0: the default; negative:
// every copy at once). Queued copies keep their times.
func (t *Tree) SetEagerInterval(d time.Duration) {
	t.eagerDefault = d == 0
	if d == 0 {
		d = defaultEagerInterval
		if t.cfg.Compact {
			d = compactEagerInterval
		}
	}
	t.cfg.EagerInterval = d
}

// SetCompact switches the compact kinds on or off (TreeConfig.Compact), and with
// them the intervals the caller did not set.
func (t *Tree) SetCompact(on bool) {
	t.cfg.Compact = on
	if t.lazyDefault {
		t.cfg.LazyInterval = defaultLazyInterval
		if on {
			t.cfg.LazyInterval = compactLazyInterval
		}
	}
	if t.eagerDefault {
		t.SetEagerInterval(0)
	}
}

// NeedPeers is how many more neighbors the tree wants to pick.
func (t *Tree) NeedPeers() int { return max(0, t.cfg.Degree-len(t.picked)) }

// AddPeers offers candidate neighbors (alive members, in any order); the tree takes
// up to NeedPeers of those that are not neighbors yet, at random, and tells them.
func (t *Tree) AddPeers(candidates []string) {
	need := t.NeedPeers()
	if need == 0 {
		return
	}
	var fresh []string
	for _, c := range candidates {
		if c != t.cfg.Self && !t.eager[c] && !t.lazy[c] && !t.picked[c] {
			fresh = append(fresh, c)
		}
	}
	sort.Strings(fresh) // candidate order must not leak into the choice (determinism)
	t.rng.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	for _, c := range fresh[:min(need, len(fresh))] {
		t.picked[c] = true
		if t.fixed {
			t.lazy[c] = true
		} else {
			t.eager[c] = true
		}
		t.out.add(c, Message{Kind: KindJoin})
	}
}

// RemovePeer forgets a neighbor that membership declared failed or gone.
func (t *Tree) RemovePeer(name string) {
	delete(t.eager, name)
	delete(t.lazy, name)
	delete(t.picked, name)
	delete(t.lazyQ, name)
	t.links.forget(name)
	delete(t.lastLazy, name)
	for _, m := range t.missing {
		m.announced = slices.DeleteFunc(m.announced, func(f string) bool { return f == name })
	}
}

// Neighbors returns the current eager and lazy neighbors, sorted.
func (t *Tree) Neighbors() (eager, lazy []string) {
	for p := range t.eager {
		eager = append(eager, p)
	}
	for p := range t.lazy {
		lazy = append(lazy, p)
	}
	sort.Strings(eager)
	sort.Strings(lazy)
	return eager, lazy
}

// IsNeighbor reports whether name is a neighbor.
func (t *Tree) IsNeighbor(name string) bool { return t.eager[name] || t.lazy[name] }

// Publish starts the broadcast of a local payload and returns its id. The caller
// has already delivered it locally.
func (t *Tree) Publish(now time.Time, payload []byte) uint64 {
	t.seq++
	if t.cfg.Compact {
		id := ContentID(payload)
		if _, ok := t.seen[id]; ok {
			return id // the same bytes are on their way already
		}
		t.remember(now, id, payload, 0)
		t.forward(now, "", id, 0, payload, nil)
		return id
	}
	h := fnv.New64a()
	h.Write([]byte(t.cfg.Self))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], t.seq)
	h.Write(b[:])
	h.Write(payload)
	id := h.Sum64()
	t.remember(now, id, payload, 0)
	t.forward(now, "", id, 0, payload, nil)
	return id
}

func (t *Tree) remember(now time.Time, id uint64, payload []byte, round uint16) {
	t.seen[id] = stored{payload: payload, round: round}
	t.short[ShortID(id)] = id
	t.order = append(t.order, seenAt{id, now})
	delete(t.missing, id)
	delete(t.missing, shortKey(ShortID(id)))
}

// shortKey keys a change known only by its ShortID in Tree.missing; full ids and
// short keys cannot meet there unless a full id has its top bit set and its upper
// half equal to the flag, which then only costs an extra graft.
func shortKey(d uint32) uint64 { return 1<<63 | uint64(d) }

func isShortKey(k uint64) bool { return k>>32 == 1<<31 }

// forward sends a change on: a copy on every eager link but the one it came from,
// an announcement on every lazy link but that one and those that announced it
// (haveIt).
func (t *Tree) forward(now time.Time, from string, id uint64, round uint16, payload []byte, haveIt []string) {
	if int(round) >= t.cfg.MaxRounds {
		return
	}
	for _, p := range slices.Sorted(maps.Keys(t.eager)) {
		if p != from {
			t.links.push(now, p, Message{Kind: KindGossip, ID: id, Round: round + 1, Payload: payload})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(t.lazy)) {
		if p == from || slices.Contains(haveIt, p) {
			continue
		}
		// A busy link announces every LazyInterval; a quiet one after a quarter of
		// it, with whatever else arrived meanwhile. Not at once, as eager copies
		// go: that doubled announcement bytes at 500 real agents and, on their
		// starved CPU, made announcements beat tree copies into ten times as many
		// grafts.
		if len(t.lazyQ[p]) == 0 && now.Sub(t.lastLazy[p]) >= t.cfg.LazyInterval {
			t.lastLazy[p] = now.Add(t.cfg.LazyInterval/4 - t.cfg.LazyInterval)
		}
		t.lazyQ[p] = append(t.lazyQ[p], id)
	}
}

// graftWait is how long an id announced by peer may stay missing.
func (t *Tree) graftWait(peer string) time.Duration {
	if t.cfg.GraftWait != nil {
		if w := t.cfg.GraftWait(peer); w > 0 && w < t.cfg.GraftTimeout {
			return w
		}
	}
	return t.cfg.GraftTimeout
}

// makeEager puts p in the tree (timing-shaped trees only).
func (t *Tree) makeEager(p string) {
	delete(t.lazy, p)
	t.eager[p] = true
}

func (t *Tree) makeLazy(p string) {
	if t.eager[p] {
		delete(t.eager, p)
		t.lazy[p] = true
	}
}

// Receive handles one message from host from. It returns the payload to deliver
// when m brought something new. A Batch is the caller's to split: it hands each
// of m.Batch to Receive.
func (t *Tree) Receive(now time.Time, from string, m Message) ([]byte, bool) {
	if from == t.cfg.Self || from == "" {
		return nil, false
	}
	switch m.Kind {
	case KindJoin:
		if !t.IsNeighbor(from) {
			if t.fixed {
				t.lazy[from] = true
			} else {
				t.eager[from] = true
			}
		}
	case KindGossip:
		if _, ok := t.seen[m.ID]; ok {
			t.Stats.Duplicates++
			if t.fixed {
				return nil, false
			}
			if t.eager[from] {
				t.makeLazy(from)
				t.Stats.Prunes++
				t.out.add(from, Message{Kind: KindPrune})
			} else if !t.IsNeighbor(from) {
				t.lazy[from] = true
			}
			return nil, false
		}
		t.Stats.Delivered++
		if !t.fixed {
			t.makeEager(from)
		}
		var haveIt []string
		if ms := t.missing[m.ID]; ms != nil {
			haveIt = ms.announced
		} else if ms := t.missing[shortKey(ShortID(m.ID))]; ms != nil {
			haveIt = ms.announced
		}
		t.remember(now, m.ID, m.Payload, m.Round)
		t.forward(now, from, m.ID, m.Round, m.Payload, haveIt)
		return m.Payload, true
	case KindIHave, KindIHaveShort:
		if !t.IsNeighbor(from) {
			t.lazy[from] = true
		}
		// Ids we have that from announced, if we still mean to announce any to it.
		var had map[uint64]bool
		pending := len(t.lazyQ[from]) > 0
		for _, id := range m.IDs {
			key := id
			if m.Kind == KindIHaveShort {
				if full, ok := t.short[ShortID(id)]; ok {
					if pending {
						had = addID(had, full)
					}
					continue
				}
				key = shortKey(ShortID(id))
			} else if _, ok := t.seen[id]; ok {
				if pending {
					had = addID(had, id)
				}
				continue
			}
			if ms := t.missing[key]; ms != nil {
				if !slices.Contains(ms.announced, from) {
					ms.announced = append(ms.announced, from)
				}
				continue
			}
			t.missing[key] = &missing{deadline: now.Add(t.graftWait(from)), announced: []string{from}}
		}
		t.dropAnnounced(from, had)
	case KindGraft, KindGraftShort:
		if !t.fixed {
			t.makeEager(from)
		}
		for _, id := range m.IDs {
			if m.Kind == KindGraftShort {
				full, ok := t.short[ShortID(id)]
				if !ok {
					continue
				}
				id = full
			}
			if s, ok := t.seen[id]; ok {
				t.Stats.Answered++
				t.out.copy(from, Message{Kind: KindGossip, ID: id, Round: s.round + 1, Payload: s.payload})
			}
		}
	case KindPrune:
		if !t.fixed {
			t.makeLazy(from)
		}
	}
	return nil, false
}

// addID adds id to set, made on first use.
func addID(set map[uint64]bool, id uint64) map[uint64]bool {
	if set == nil {
		set = map[uint64]bool{}
	}
	set[id] = true
	return set
}

// dropAnnounced takes ids peer announced to us out of what we were going to
// announce to it: it has them. Both ends of a lazy link get most changes within
// one LazyInterval of each other, and each announced every id to the other; now
// the first to send speaks for both: at 10,000 simulated hosts announcements fell
// from 19 to 15 bytes per change per host (the packets stay, with fewer ids).
func (t *Tree) dropAnnounced(peer string, had map[uint64]bool) {
	q := t.lazyQ[peer]
	if len(had) == 0 || len(q) == 0 {
		return
	}
	q = slices.DeleteFunc(q, func(id uint64) bool { return had[id] })
	if len(q) == 0 {
		delete(t.lazyQ, peer)
		return
	}
	t.lazyQ[peer] = q
}

// Tick runs timers: announcements due, grafts for ids still missing, expiry.
func (t *Tree) Tick(now time.Time) {
	// Expire.
	i := 0
	for ; i < len(t.order) && now.Sub(t.order[i].at) > t.cfg.Keep; i++ {
		id := t.order[i].id
		delete(t.seen, id)
		if t.short[ShortID(id)] == id {
			delete(t.short, ShortID(id))
		}
	}
	if i > 0 {
		t.order = append(t.order[:0], t.order[i:]...)
	}
	// Grafts, one message per announcer.
	var grafts map[string][]uint64
	for id, ms := range t.missing {
		if now.Before(ms.deadline) {
			continue
		}
		if len(ms.announced) == 0 || ms.grafts >= graftRounds {
			// Nobody left to ask: anti-entropy will bring it.
			t.Stats.Missed++
			delete(t.missing, id)
			continue
		}
		ask := ms.announced
		if ms.grafts == 0 {
			ask = ask[:1]
		}
		ms.grafts++
		ms.deadline = now.Add(t.cfg.GraftTimeout) // the graft's answer takes a round trip too
		if grafts == nil {
			grafts = map[string][]uint64{}
		}
		for _, p := range ask {
			grafts[p] = append(grafts[p], id)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(grafts)) {
		ids := grafts[p]
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		if !t.fixed {
			t.makeEager(p)
		}
		t.Stats.Grafts++
		t.Stats.GraftIDs += uint64(len(ids))
		// Ids announced in full are asked for in full, short ones by digest.
		var full, short []uint64
		for _, id := range ids {
			if isShortKey(id) {
				short = append(short, uint64(ShortID(id)))
			} else {
				full = append(full, id)
			}
		}
		t.out.ids(p, KindGraft, full)
		t.out.ids(p, KindGraftShort, short)
	}
	// Eager batches due.
	t.links.flushDue(now)
	// Announcements due.
	for _, p := range slices.Sorted(maps.Keys(t.lazyQ)) {
		if now.Before(t.lastLazy[p].Add(t.cfg.LazyInterval)) {
			continue
		}
		kind := KindIHave
		if t.cfg.Compact {
			kind = KindIHaveShort
		}
		t.out.ids(p, kind, t.lazyQ[p])
		delete(t.lazyQ, p)
		t.lastLazy[p] = now
	}
}

// maxIDs bounds one IHave or Graft so it fits a UDP packet.
const maxIDs = 120

// Deadline is the next time Tick has work to do (zero: none pending).
func (t *Tree) Deadline() time.Time {
	var d time.Time
	for p := range t.lazyQ {
		if due := t.lastLazy[p].Add(t.cfg.LazyInterval); d.IsZero() || due.Before(d) {
			d = due
		}
	}
	for _, ms := range t.missing {
		if d.IsZero() || ms.deadline.Before(d) {
			d = ms.deadline
		}
	}
	if due := t.links.deadline(); !due.IsZero() && (d.IsZero() || due.Before(d)) {
		d = due
	}
	return d
}

// Outbox returns and clears the messages queued since the last call.
func (t *Tree) Outbox() []Send {
	return t.out.take()
}
