package catalog

import "hash/maphash"

// mtable is a set of machine entries keyed by id: open addressing with linear
// probing over a slice of pointers. A Go map would cost a key string header, a
// pointer and its control bytes per entry at a lower load (~35 bytes); this costs
// the pointer at load 0.5–0.75 (~13 bytes), which keeps probe chains short. Not safe for concurrent use; the
// catalog uses it under its lock.
type mtable struct {
	slots []*mentry
	n     int
}

// home is the slot a key hashes to (a multiply-shift range reduction, so the table
// can grow by 1.5x rather than doubling).
func (t *mtable) home(seed maphash.Seed, key string) int {
	return int(uint64(uint32(maphash.String(seed, key))) * uint64(len(t.slots)) >> 32)
}

func (t *mtable) get(seed maphash.Seed, key string) *mentry {
	if t.n == 0 {
		return nil
	}
	for i := t.home(seed, key); ; i = t.next(i) {
		e := t.slots[i]
		if e == nil {
			return nil
		}
		if e.m.ID == key {
			return e
		}
	}
}

func (t *mtable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// put inserts e, replacing an entry with its id.
func (t *mtable) put(seed maphash.Seed, e *mentry) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow(seed)
	}
	for i := t.home(seed, e.m.ID); ; i = t.next(i) {
		switch o := t.slots[i]; {
		case o == nil:
			t.slots[i] = e
			t.n++
			return
		case o.m.ID == e.m.ID:
			t.slots[i] = e
			return
		}
	}
}

func (t *mtable) grow(seed maphash.Seed) {
	old := t.slots
	t.slots = make([]*mentry, max(8, len(old)*3/2))
	t.n = 0
	for _, e := range old {
		if e != nil {
			t.put(seed, e)
		}
	}
}

// del removes the entry with this id, shifting the entries probed after it back so
// no lookup stops early at the hole.
func (t *mtable) del(seed maphash.Seed, key string) {
	if t.n == 0 {
		return
	}
	i := t.home(seed, key)
	for ; ; i = t.next(i) {
		e := t.slots[i]
		if e == nil {
			return
		}
		if e.m.ID == key {
			break
		}
	}
	for j := t.next(i); t.slots[j] != nil; j = t.next(j) {
		k := t.home(seed, t.slots[j].m.ID)
		// The entry at j may fill the hole at i unless its home lies cyclically
		// in (i, j].
		if (i < j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = nil
	t.n--
	if t.n == 0 {
		t.slots = nil
	}
}
