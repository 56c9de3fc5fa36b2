package gossip

import (
	"errors"
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	g := newReplayGuard(func() time.Time { return now })
	msg := []byte{byte(msgRPCReq), '{', '}'}
	sealed := seal(t0, msg)

	if got, _, err := g.open(sealed); err != nil || string(got) != string(msg) {
		t.Fatalf("first delivery: %q %v", got, err)
	}
	if _, _, err := g.open(sealed); !errors.Is(err, errReplayed) {
		t.Errorf("second delivery: %v, want errReplayed", err)
	}
	// A receiver that restarted has forgotten the nonce; the window still holds.
	now = t0.Add(replayWindow + time.Second)
	fresh := newReplayGuard(func() time.Time { return now })
	if _, skew, err := fresh.open(sealed); !errors.Is(err, errClockSkew) || skew < replayWindow {
		t.Errorf("replay after the window: %v (skew %v), want errClockSkew", err, skew)
	}
	// Hours later, same.
	now = t0.Add(3 * time.Hour)
	if _, _, err := fresh.open(sealed); !errors.Is(err, errClockSkew) {
		t.Errorf("replay hours later: %v", err)
	}
	// A sender clock far ahead is refused too.
	now = t0
	if _, _, err := fresh.open(seal(t0.Add(replayWindow+time.Minute), msg)); !errors.Is(err, errClockSkew) {
		t.Errorf("future message: %v", err)
	}
	// Tampering with the seal is memberlist's to catch (it authenticates the whole
	// message); what reaches us without a seal is refused.
	for _, b := range [][]byte{msg, nil, {sealTag}, sealed[:sealOverhead-1]} {
		if _, _, err := fresh.open(b); !errors.Is(err, errUnsealed) {
			t.Errorf("unsealed %q: %v", b, err)
		}
	}
	// An empty inner message is sealed fine and decode refuses it later.
	if got, _, err := fresh.open(seal(t0, nil)); err != nil || len(got) != 0 {
		t.Errorf("empty inner: %q %v", got, err)
	}
}

func TestReplayGuardMemoryIsBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	g := newReplayGuard(func() time.Time { return now })
	g.max = 3
	for i := 0; i < 3; i++ {
		if _, _, err := g.open(seal(t0, []byte{1})); err != nil {
			t.Fatal(err)
		}
	}
	// Full of nonces still inside the window: refuse rather than forget one.
	if _, _, err := g.open(seal(t0, []byte{1})); !errors.Is(err, errMemory) {
		t.Fatalf("over capacity: %v, want errMemory", err)
	}
	// Once they leave the window they are forgotten and room is made.
	now = t0.Add(replayWindow + time.Second)
	if _, _, err := g.open(seal(now, []byte{1})); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if len(g.seen) != 1 {
		t.Errorf("remembered %d nonces, want 1", len(g.seen))
	}
}
