package sim

import (
	"os"
	"testing"
	"time"
)

// TestBenchSimLevers: what each lever of the compact tree buys, one at a time, on
// the fleet run's stream (DOGWOOD_SIM_HOSTS hosts, 100 changes/s, no loss). Set
// DOGWOOD_SIM_LEVERS=1 as well: six runs take several minutes at 1,000 hosts.
func TestBenchSimLevers(t *testing.T) {
	benchOn(t)
	if os.Getenv("DOGWOOD_SIM_LEVERS") != "1" {
		t.Skip("set DOGWOOD_SIM_LEVERS=1")
	}
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"as every release reads it (eager 20ms, announcements 200ms)", Config{}},
		{"eager copies wait up to 70ms", Config{EagerInterval: 70 * time.Millisecond}},
		{"announcements every 500ms", Config{LazyInterval: 500 * time.Millisecond}},
		{"compact messages only (eager 20ms, announcements 200ms)", Config{Compact: true, EagerInterval: 20 * time.Millisecond, LazyInterval: 200 * time.Millisecond}},
		{"compact + eager 70ms", Config{Compact: true, LazyInterval: 200 * time.Millisecond}},
		{"compact + eager 70ms + announcements 500ms (compact defaults)", Config{Compact: true}},
	} {
		cfg := c.cfg
		cfg.Hosts, cfg.Seed, cfg.Rate, cfg.Changes, cfg.Settle, cfg.Warmup = simHosts(), 1, 100, 150, 3*time.Second, time.Second
		r := Run(cfg)
		line("lever %s: per-host p99=%s every-host p99=%s; steady stream per host per change: %s = %.0f B, %.2fx the %.0f B record",
			c.name, ms(r.P99), ms(r.EveryP99), r.Steady, r.Steady.Total(), r.Steady.Total()/r.RecordBytes, r.RecordBytes)
		if r.Missing > 0 || !r.Converged {
			t.Errorf("%s: %d deliveries missing, converged=%v", c.name, r.Missing, r.Converged)
		}
	}
}
