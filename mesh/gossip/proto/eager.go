package proto

import (
	"maps"
	"slices"
	"time"
)

// outbox holds what a Tree sends until the caller takes it. Copies of changes for
// one link made before then leave in one message (copy): the entries of a pack
// that arrives reach Receive one by one, and each copy they made went on in a
// packet of its own (a burst's first copy alone, the rest in a batch a whole
// interval later); at 10,000 simulated hosts that cost 12 bytes per change per
// host. Grafted ids are answered in one message, too.
type outbox struct {
	cfg   *TreeConfig // the Tree's: whether messages are compact
	sends []Send
	// leaving is the eager message to each link in sends, which later copies join.
	leaving map[string]int
}

func (o *outbox) add(to string, m Message) { o.sends = append(o.sends, Send{To: to, Msg: m}) }

// copy sends eager copy m to p with the copies already leaving for p, or in a
// message of its own that later ones may join.
func (o *outbox) copy(p string, m Message) {
	if o.join(p, m) {
		return
	}
	o.eager(p, o.single(m))
}

// eager adds an eager message for p that later copies may join.
func (o *outbox) eager(p string, m Message) {
	o.leaving[p] = len(o.sends)
	o.add(p, m)
}

// join adds copy m to the eager message already leaving for p, if there is one
// with room.
func (o *outbox) join(p string, m Message) bool {
	i, ok := o.leaving[p]
	if !ok {
		return false
	}
	s := &o.sends[i].Msg
	if s.Size()+batchEntrySize(&m) > batchLimit {
		return false
	}
	switch s.Kind {
	case KindPack, KindBatch:
		s.Batch = append(s.Batch, m)
	case KindGossip:
		*s = Message{Kind: KindBatch, Batch: []Message{*s, m}}
	default:
		return false
	}
	return true
}

// single is how one eager copy travels: a Gossip message, or in compact mode a
// pack of one (2 bytes of framing instead of 10).
func (o *outbox) single(m Message) Message {
	if o.cfg.Compact {
		return Message{Kind: KindPack, Batch: []Message{m}}
	}
	return m
}

// ids sends ids to p in messages of kind of at most maxIDs each.
func (o *outbox) ids(p string, kind Kind, ids []uint64) {
	for len(ids) > 0 {
		n := min(len(ids), maxIDs)
		o.add(p, Message{Kind: kind, IDs: ids[:n]})
		ids = ids[n:]
	}
}

// take returns and clears what was queued.
func (o *outbox) take() []Send {
	out := o.sends
	o.sends = nil
	clear(o.leaving)
	return out
}

// eagerLinks decides when each eager link's copies leave (TreeConfig.
// EagerInterval): at once on a quiet link, else in a batch per interval, and in a
// batch only on a link that carries a stream.
type eagerLinks struct {
	cfg    *TreeConfig // the Tree's: EagerInterval
	out    *outbox
	queued map[string]*eagerBatch
	// lastPush is when each link last sent eager copies.
	lastPush map[string]time.Time
	// lastCopy is when each link was last given an eager copy, and gap the
	// smoothed time between its copies: whether it carries a stream (push).
	lastCopy map[string]time.Time
	gap      map[string]time.Duration
}

type eagerBatch struct {
	due  time.Time
	msgs []Message
	size int
}

// batchLimit keeps a batch inside one UDP packet (gossip.bestEffortLimit, less the
// sender frame).
const batchLimit = 1000

// push sends an eager copy now, or queues it in p's batch.
func (e *eagerLinks) push(now time.Time, p string, m Message) {
	interval := e.cfg.EagerInterval
	if interval <= 0 {
		e.out.add(p, e.out.single(m))
		return
	}
	apart, streaming := e.noteCopy(now, p)
	if e.out.join(p, m) {
		return
	}
	q := e.queued[p]
	if q == nil && now.Sub(e.lastPush[p]) >= interval {
		// The link was quiet: no wait (a lone change is not delayed).
		e.lastPush[p] = now
		e.out.copy(p, m)
		return
	}
	if q == nil && !streaming && apart >= interval/4 {
		// Changes too far apart for company to be worth the wait. The link's
		// batch times stay where they were: along a stream they line up hop after
		// hop, so a batch that arrives finds the next link's batch due.
		e.out.copy(p, m)
		return
	}
	if q != nil && q.size+batchEntrySize(&m) > batchLimit {
		e.flush(p, q)
		q = nil
	}
	if q == nil {
		q = &eagerBatch{due: e.lastPush[p].Add(interval), size: 4}
		e.queued[p] = q
	}
	q.msgs = append(q.msgs, m)
	q.size += batchEntrySize(&m)
}

// Eager copies wait for company only on a link that carries a stream (Nagle's
// rule, with the stream measured): a copy closer than a quarter of EagerInterval to
// the link's last one (a burst), or on a link whose smoothed gap between copies is
// below streamGap. Changes a few tens of milliseconds apart otherwise each waited
// for the rest of the interval at every hop. In the simulator (300 hosts, 1-5 ms
// links, compact messages), at 25 changes/s a host had a change in p99 145 ms with
// every copy held, 18 ms now, for 222 B received per change instead of 214; at 100
// changes/s links stream and batch as before (133 B per change), p99 190 -> 152 ms
// (a copy sent alone leaves the link's batch times where they were; see push).
const (
	streamGap = 20 * time.Millisecond
	// gapCap bounds one sample: after a quiet spell a link counts as streaming
	// again within a few copies.
	gapCap = 4 * streamGap
)

// noteCopy records an eager copy for p; it returns how long after the link's last
// copy it came and whether the link carries a stream.
func (e *eagerLinks) noteCopy(now time.Time, p string) (apart time.Duration, streaming bool) {
	apart = gapCap
	if last, ok := e.lastCopy[p]; ok {
		apart = max(now.Sub(last), 0)
	}
	g, ok := e.gap[p]
	if !ok {
		g = gapCap
	}
	g += (min(apart, gapCap) - g) / 4
	e.lastCopy[p], e.gap[p] = now, g
	return apart, g < streamGap
}

func (e *eagerLinks) flush(p string, q *eagerBatch) {
	delete(e.queued, p)
	if q.due.After(e.lastPush[p]) {
		e.lastPush[p] = q.due
	}
	switch {
	case e.cfg.Compact:
		e.out.eager(p, Message{Kind: KindPack, Batch: q.msgs})
	case len(q.msgs) == 1:
		e.out.eager(p, q.msgs[0])
	default:
		e.out.eager(p, Message{Kind: KindBatch, Batch: q.msgs})
	}
}

// flushDue sends the batches due by now.
func (e *eagerLinks) flushDue(now time.Time) {
	for _, p := range slices.Sorted(maps.Keys(e.queued)) {
		if q := e.queued[p]; !now.Before(q.due) {
			e.flush(p, q)
		}
	}
}

// deadline is when the next batch is due (zero: none queued).
func (e *eagerLinks) deadline() time.Time {
	var d time.Time
	for _, q := range e.queued {
		if d.IsZero() || q.due.Before(d) {
			d = q.due
		}
	}
	return d
}

// forget drops a link that is gone.
func (e *eagerLinks) forget(p string) {
	delete(e.queued, p)
	delete(e.lastPush, p)
	delete(e.lastCopy, p)
	delete(e.gap, p)
}
