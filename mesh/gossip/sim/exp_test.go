package sim

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func envDur(k string, d time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return v
	}
	return d
}
func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}

func TestExp(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	loss, _ := strconv.ParseFloat(os.Getenv("EXP_LOSS"), 64)
	cfg := Config{Hosts: envInt("EXP_HOSTS", 1000), Seed: int64(envInt("EXP_SEED", 1)), Rate: 100, Changes: envInt("EXP_CHANGES", 150),
		Settle: 3 * time.Second, Idle: 3 * time.Second, Loss: loss, Warmup: envDur("EXP_WARM", 0),
		Degree: envInt("EXP_DEGREE", 0), GraftTimeout: envDur("EXP_GRAFT", 0), LazyInterval: envDur("EXP_LAZY", 0), TimingTree: os.Getenv("EXP_TIMING") != "", Fanout: envInt("EXP_FANOUT", 0)}
	start := time.Now()
	r := Run(cfg)
	t.Logf("%s (wall %v)", r, time.Since(start).Round(time.Second))
}

func envF(k string) float64 { f, _ := strconv.ParseFloat(os.Getenv(k), 64); return f }
