package wgsync

import (
	"testing"
	"time"

	"github.com/dogwood/dogwood/peers/plan"
)

// Fleet is the benchmark shape of the brief: 1,000 host peers (each in three
// networks) and 10,000 user peers.
func fleet() []plan.Peer {
	var ps []plan.Peer
	for i := uint32(2); i < 1002; i++ {
		ps = append(ps, hostPeer(i, 0x18, 0x19, 0x20))
	}
	for i := 0; i < 10000; i++ {
		ps = append(ps, userPeer(uint32(i), i))
	}
	return ps
}

func loaded(b *testing.B, want []plan.Peer) *Fake {
	f := NewFake("wg0", priv)
	if _, err := Reconcile(f, want, Settings{}); err != nil {
		b.Fatal(err)
	}
	f.Configs()
	return f
}

// BenchmarkReconcileAddOne alternates between the fleet and the fleet plus one
// host: every iteration adds or removes exactly one peer on an 11,000-peer device.
func BenchmarkReconcileAddOne(b *testing.B) {
	base := fleet()
	plus := append(append([]plan.Peer{}, base...), hostPeer(5000, 0x18))
	f := loaded(b, base)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := plus
		if i%2 == 1 {
			want = base
		}
		ch, err := Reconcile(f, want, Settings{})
		if err != nil || ch.Added+ch.Removed != 1 {
			b.Fatalf("%s %v", ch, err)
		}
		f.Configs()
	}
}

func BenchmarkReconcileNoChange(b *testing.B) {
	base := fleet()
	f := loaded(b, base)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ch, err := Reconcile(f, base, Settings{}); err != nil || !ch.Empty() {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

func BenchmarkReconcileFullResync(b *testing.B) {
	base := fleet()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := NewFake("wg0", priv)
		b.StartTimer()
		if ch, err := Reconcile(f, base, Settings{}); err != nil || ch.Added != len(base) {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

// The Reconciler variants are what the data plane runs: the device is read once.
func BenchmarkReconcilerAddOne(b *testing.B) {
	base := fleet()
	plus := append(append([]plan.Peer{}, base...), hostPeer(5000, 0x18))
	r := NewReconciler(loaded(b, base), time.Hour, nil)
	r.Reconcile(base, Settings{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := plus
		if i%2 == 1 {
			want = base
		}
		if ch, err := r.Reconcile(want, Settings{}); err != nil || ch.Added+ch.Removed != 1 {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

func BenchmarkReconcilerNoChange(b *testing.B) {
	base := fleet()
	r := NewReconciler(loaded(b, base), time.Hour, nil)
	r.Reconcile(base, Settings{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ch, err := r.Reconcile(base, Settings{}); err != nil || !ch.Empty() {
			b.Fatalf("%s %v", ch, err)
		}
	}
}
