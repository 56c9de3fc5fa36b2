package gossip

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A healthy host exports every drop reason at 0, so the dashboard's "Gossip
// messages dropped" panel and rate() over it have data before the first drop.
func TestDroppedReasonsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "dogwood_gossip_messages_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	// Every reason the package drops with is among them.
	files, _ := filepath.Glob("*.go")
	used := map[string]bool{"decrypt": true, "memberlist": true} // mllog.go's, from memberlist's lines
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`\.drop\("([a-z_]+)"`).FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	for r := range used {
		if v, ok := got[r]; !ok || v != 0 {
			t.Errorf("reason %q: exported %v (%v), want 0 from the start", r, ok, v)
		}
		if !slices.Contains(dropReasons, r) {
			t.Errorf("reason %q is not in dropReasons", r)
		}
	}
}
