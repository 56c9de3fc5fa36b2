// Package needs owns one rule for every test tree: a test that cannot run here (no
// root, no /dev/net/tun, a tool missing) skips with a message saying what it needs,
// except under CI=true, where the same condition fails the test. CI must never go
// green because the suites that matter quietly did not run. Skips that are choices
// (-short, benchmarks gated by an environment variable, helper processes) are not
// this package's business and stay plain t.Skip.
package needs

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// CI reports whether the environment says this is a CI run (CI=true, or any value
// strconv.ParseBool takes as true).
func CI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Skip skips t with the message, or fails it under CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	skip(t, CI(), fmt.Sprintf(format, args...))
}

func skip(t testing.TB, ci bool, msg string) {
	t.Helper()
	if ci {
		t.Fatalf("CI=true and this test cannot run: %s", msg)
		return
	}
	t.Skip("skipping: " + msg)
}

// Root needs the test to run as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (network namespaces, TUN, nftables); run `sudo go test` to include it")
	}
}

// TUN needs /dev/net/tun (userspace WireGuard).
func TUN(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		Skip(t, "no /dev/net/tun (the agents run userspace WireGuard)")
	}
}

// Tools needs every named command on PATH.
func Tools(t testing.TB, tools ...string) {
	t.Helper()
	if missing := Missing(tools...); len(missing) > 0 {
		Skip(t, "tools not installed: %s (run `make deps`)", strings.Join(missing, ", "))
	}
}

// Missing lists the tools not on PATH.
func Missing(tools ...string) []string {
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	return missing
}
