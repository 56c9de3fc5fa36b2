package sim

import (
	"testing"
	"time"
)

// Small seeds of the fleet-size runs (make test): every change reaches every host,
// the fleet converges after a partition with loss and churn, and no host's cost
// follows the fleet size. The speed and traffic targets are measured by make bench
// (TestBenchSim*), not asserted here.
func TestThousandHosts(t *testing.T) {
	const seed = 1
	r := Run(Config{Hosts: 1000, Seed: seed, Changes: 50, Rate: 100, Settle: 3 * time.Second})
	t.Logf("seed %d: %s", seed, r)
	if r.Missing != 0 || !r.Converged {
		t.Fatalf("seed %d: %d deliveries missing, converged=%v", seed, r.Missing, r.Converged)
	}
	// The old design sent every change from its source to every host: 999 messages
	// per change from one host. A tree host sends to its neighbors only; the busiest
	// is the layout's root, with about (fanout-1) children per level (about 40).
	if r.MaxHostMsgs > 60 {
		t.Errorf("seed %d: a host sent %.1f messages per change; want a bound set by the tree degree", seed, r.MaxHostMsgs)
	}
}

func TestLossPartitionChurn(t *testing.T) {
	const seed = 3
	r := Run(Config{Hosts: 300, Seed: seed, Changes: 60, Rate: 50, Loss: 0.01,
		PartitionFraction: 0.3, PartitionAt: 300 * time.Millisecond, PartitionFor: 3 * time.Second,
		ChurnEvery: 200 * time.Millisecond, ChurnDown: time.Second, Settle: 15 * time.Second})
	t.Logf("seed %d: %s", seed, r)
	if !r.Converged || r.HealConverged == 0 || r.Missing != 0 {
		t.Fatalf("seed %d: not converged after heal: %s", seed, r)
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Hosts: 100, Seed: 7, Changes: 30, Loss: 0.02, Settle: 3 * time.Second}
	a, b := Run(cfg), Run(cfg)
	if a != b {
		t.Fatalf("seed 7: same seed, different runs:\n%s\n%s", a, b)
	}
}

// TestHealthTransitions: a machine's health transition (its host writes a new
// version of its record) reaches every one of 1,000 hosts with p99 ≤ 1 s, on links
// of 1-100 ms, while transitions are written at 100 a second fleet-wide (make bench:
// TestBenchSimHealth measures more of them).
func TestHealthTransitions(t *testing.T) {
	const seed = 1
	r := Run(Config{Hosts: 1000, Seed: seed, Health: true, Warmup: 500 * time.Millisecond, Changes: 40, Rate: 100, Settle: 2 * time.Second})
	t.Logf("seed %d: %s", seed, r)
	if r.Missing != 0 || !r.Converged {
		t.Fatalf("seed %d: %d deliveries missing, converged=%v", seed, r.Missing, r.Converged)
	}
	if r.EveryP99 > time.Second {
		t.Errorf("seed %d: a transition reached every host in p99 %v, want ≤ 1 s", seed, r.EveryP99)
	}
}
