package meshbench

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Line prints one result line ("BENCH ...") on stdout, where `make bench` greps for it,
// and appends it to the report named by DOGWOOD_BENCH_REPORT, if any.
func Line(format string, args ...any) {
	s := "BENCH " + fmt.Sprintf(format, args...)
	fmt.Println(s)
	appendReport("    " + s + "\n")
}

// Section starts a markdown section in the report file (stdout gets a BENCH line).
func Section(title, note string) {
	fmt.Println("BENCH ## " + title)
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s\n\n", title)
	if note != "" {
		fmt.Fprintf(&b, "%s\n\n", note)
	}
	appendReport(b.String())
}

var reportMu sync.Mutex
var reportHeader sync.Once

func appendReport(s string) {
	path := os.Getenv("DOGWOOD_BENCH_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshbench: report: %v\n", err)
		return
	}
	defer f.Close()
	reportHeader.Do(func() {
		host, _ := os.Hostname()
		fmt.Fprintf(f, "\n# Dogwood mesh benchmarks, %s on %s\n", time.Now().UTC().Format(time.RFC3339), host)
	})
	_, _ = f.WriteString(s)
}

// Percentile returns the p-th percentile (0..100) of ds by nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p/100*float64(len(s))+0.999999) - 1
	k = max(0, min(k, len(s)-1))
	return s[k]
}

// Ms formats a duration in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// Bytes formats a byte count.
func Bytes(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
