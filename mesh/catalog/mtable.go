package catalog

import (
	"hash/maphash"
	"iter"
)

// mtable is a set of machine entries keyed by id (or by client request id): open
// addressing with linear probing over a slice of pointers, with a one-byte hash tag
// per slot so that a probe only follows a pointer (a cache miss) when the tag
// matches. A Go map would cost a key string header, a pointer and its control bytes
// per entry at a lower load (~35 bytes); this costs the pointer and the tag at load
// 0.5–0.75 (~15 bytes). Not safe for concurrent use; the catalog uses it under its
// lock.
type mtable struct {
	slots []*mentry
	tags  []uint8
	n     int
	// byRequest keys the table by the machines' client request ids instead.
	byRequest bool
}

func (t *mtable) key(e *mentry) string {
	if t.byRequest {
		return e.m.RequestID
	}
	return e.m.ID
}

// home is the slot a hash maps to (a multiply-shift range reduction, so the table
// can grow by 1.5x rather than doubling); tag is the byte kept beside the slot.
func (t *mtable) home(h uint64) int { return int(uint64(uint32(h)) * uint64(len(t.slots)) >> 32) }

func tag(h uint64) uint8 { return uint8(h >> 56) }

func (t *mtable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

func (t *mtable) get(seed maphash.Seed, key string) *mentry {
	if t.n == 0 {
		return nil
	}
	h := maphash.String(seed, key)
	g := tag(h)
	for i := t.home(h); ; i = t.next(i) {
		e := t.slots[i]
		if e == nil {
			return nil
		}
		if t.tags[i] == g && t.key(e) == key {
			return e
		}
	}
}

// put inserts e, replacing an entry with its key.
func (t *mtable) put(seed maphash.Seed, e *mentry) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow(seed)
	}
	t.insert(maphash.String(seed, t.key(e)), e)
}

func (t *mtable) insert(h uint64, e *mentry) {
	k, g := t.key(e), tag(h)
	for i := t.home(h); ; i = t.next(i) {
		switch o := t.slots[i]; {
		case o == nil:
			t.slots[i], t.tags[i] = e, g
			t.n++
			return
		case t.tags[i] == g && t.key(o) == k:
			t.slots[i] = e
			return
		}
	}
}

func (t *mtable) grow(seed maphash.Seed) {
	old := t.slots
	size := max(8, len(old)*3/2)
	t.slots, t.tags, t.n = make([]*mentry, size), make([]uint8, size), 0
	for _, e := range old {
		if e != nil {
			t.insert(maphash.String(seed, t.key(e)), e)
		}
	}
}

// del removes the entry with this key, shifting the entries probed after it back so
// no lookup stops early at the hole.
func (t *mtable) del(seed maphash.Seed, key string) {
	if t.n == 0 {
		return
	}
	h := maphash.String(seed, key)
	g := tag(h)
	i := t.home(h)
	for ; ; i = t.next(i) {
		e := t.slots[i]
		if e == nil {
			return
		}
		if t.tags[i] == g && t.key(e) == key {
			break
		}
	}
	for j := t.next(i); t.slots[j] != nil; j = t.next(j) {
		k := t.home(maphash.String(seed, t.key(t.slots[j])))
		// The entry at j may fill the hole at i unless its home lies cyclically
		// in (i, j].
		if (i < j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		t.slots[i], t.tags[i] = t.slots[j], t.tags[j]
		i = j
	}
	t.slots[i], t.tags[i] = nil, 0
	t.n--
	if t.n == 0 {
		t.slots, t.tags = nil, nil
	}
}

// all yields every entry, in slot order.
func (t *mtable) all() iter.Seq[*mentry] {
	return func(yield func(*mentry) bool) {
		for _, e := range t.slots {
			if e != nil && !yield(e) {
				return
			}
		}
	}
}
