package gossip

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Replay protection for our user messages.
//
// Threat: memberlist encrypts and authenticates every packet with the gossip key
// (AES-GCM) but keeps no state about what it has seen, so anyone on the underlay
// can record a packet and send it again later, from any address, without the key;
// it decrypts fine and reaches NotifyMsg. A recorded "stop machine X" request would
// stop X again after it was restarted.
//
// Defence: every message we encode is sealed (inside memberlist's encryption, so
// the seal cannot be changed without the key) with the sender's wall-clock time and
// a random 128-bit nonce. A receiver admits a sealed message once: it refuses one
// whose time is outside ±replayWindow of its own clock, and remembers the nonce of
// every message it admitted until that message's time leaves the window. Together
// that is "at most once, and only within the window", whoever resends it and
// whenever. Unsealed messages are refused. RPC call ids start at a random value per
// process, so even a response admitted by a receiver that restarted (its memory of
// nonces is gone) cannot be matched to a new call.
//
// Cost: 25 bytes per message and one map entry per admitted message for the length
// of the window. Clocks of hosts must agree within the window (NTP does this easily);
// a host whose clock is off by more sees its messages refused, logged at WARN with
// the offset and counted as dogwood_gossip_dropped_total{reason="clock_skew"}.

// replayWindow is how far a sealed message's time may be from the receiver's clock.
const replayWindow = 2 * time.Minute

// replayMemory caps remembered nonces; beyond it (more than ~1000 messages a
// second from the whole cluster for two minutes) new messages are refused rather
// than remembered incompletely.
const replayMemory = 1 << 18

// sealTag starts a sealed message. It is outside the range of message types, so
// a sealed and an unsealed message can never be confused.
const sealTag = 0xd0

const sealOverhead = 1 + 8 + 16

// seal wraps an encoded message with a time and a fresh nonce.
func seal(now time.Time, msg []byte) []byte {
	out := make([]byte, sealOverhead, sealOverhead+len(msg))
	out[0] = sealTag
	binary.BigEndian.PutUint64(out[1:9], uint64(now.UnixNano()))
	if _, err := rand.Read(out[9:25]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the runtime promises it does not
	}
	return append(out, msg...)
}

var (
	errUnsealed  = errors.New("message without replay seal")
	errReplayed  = errors.New("replayed message (nonce already seen)")
	errClockSkew = errors.New("message time outside the replay window")
	errMemory    = errors.New("replay memory full")
)

// replayGuard admits each sealed message at most once within the window.
type replayGuard struct {
	now    func() time.Time
	window time.Duration
	max    int

	mu     sync.Mutex
	seen   map[[16]byte]int64 // nonce → message time (unix nanos)
	admits int
	warned time.Time // last clock-skew warning: one per 10 s is enough
}

// shouldWarn rate-limits the clock-skew warning (a skewed host sends every second).
func (r *replayGuard) shouldWarn() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.warned) < 10*time.Second {
		return false
	}
	r.warned = now
	return true
}

func newReplayGuard(now func() time.Time) *replayGuard {
	if now == nil {
		now = time.Now
	}
	return &replayGuard{now: now, window: replayWindow, max: replayMemory, seen: map[[16]byte]int64{}}
}

// open checks a sealed message and returns what it wraps; skew is how far the
// message's time is from ours when that is the reason for refusing it.
func (r *replayGuard) open(buf []byte) (msg []byte, skew time.Duration, err error) {
	if len(buf) < sealOverhead || buf[0] != sealTag {
		return nil, 0, errUnsealed
	}
	ts := int64(binary.BigEndian.Uint64(buf[1:9]))
	var nonce [16]byte
	copy(nonce[:], buf[9:25])
	now := r.now().UnixNano()
	if d := time.Duration(now - ts); d > r.window || d < -r.window {
		return nil, d, errClockSkew
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[nonce]; dup {
		return nil, 0, errReplayed
	}
	if r.admits++; r.admits%1024 == 0 || len(r.seen) >= r.max {
		r.forget(now)
	}
	if len(r.seen) >= r.max {
		return nil, 0, errMemory
	}
	r.seen[nonce] = ts
	return buf[sealOverhead:], 0, nil
}

// forget drops nonces whose messages are outside the window: the time check alone
// refuses those now.
func (r *replayGuard) forget(now int64) {
	for n, ts := range r.seen {
		if now-ts > int64(r.window) {
			delete(r.seen, n)
		}
	}
}

// randomID is a random starting point for RPC call ids.
func randomID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1 // leave room before wrapping
}

// unseal is receive's gate: it returns the wrapped message, or false after counting
// why the message was dropped.
func (g *Gossip) unseal(buf []byte) ([]byte, bool) {
	msg, skew, err := g.replay.open(buf)
	switch {
	case err == nil:
		return msg, true
	case errors.Is(err, errClockSkew):
		g.drop("clock_skew", err)
		if !g.replay.shouldWarn() {
			break
		}
		g.log.Warn("dropped a gossip message from outside the replay window: a replay, or a host whose clock is off (check NTP)",
			"offset", skew.Round(time.Second).String(), "window", g.replay.window.String())
	case errors.Is(err, errReplayed) && len(buf) > sealOverhead && msgType(buf[sealOverhead]) == msgRecords:
		// A records message seen twice is not worth alarm (records are idempotent);
		// it is counted apart from other replays so those stand out.
		g.drop("duplicate_records", err)
	case errors.Is(err, errReplayed):
		g.drop("replay", err)
	case errors.Is(err, errMemory):
		g.drop("replay_memory", err)
	default:
		g.drop("unsealed", err)
		if from := unsealedSender(buf); from != "" {
			g.versions.unsealed(from)
		}
	}
	return nil, false
}
