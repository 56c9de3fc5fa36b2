package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Bad check and app health flags are usage errors (exit 2) before any agent is asked.
func TestHealthFlagsUsage(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"machines", "create", "--app", "web", "--check", "udp:53"}, "kind must be tcp or http"},
		{[]string{"machines", "create", "--app", "web", "--check", "tcp:99999"}, "port must be 1-65535"},
		{[]string{"machines", "create", "--app", "web", "--check", "tcp"}, "want tcp:PORT or http:PORT[/PATH]"},
		{[]string{"machines", "create", "--app", "web", "--check", "http:80", "--check-interval", "1s", "--check-timeout", "2s"}, "at most the interval"},
		{[]string{"machines", "create", "--app", "web", "--check", "http:80", "--check-rise", "0"}, "at least 1"},
		{[]string{"machines", "create", "--app", "web", "--check-fall", "5"}, "--check-fall needs at least one --check"},
		{[]string{"apps", "create", "web", "--org", "acme", "--when-none-healthy", "some"}, "use all or none"},
		{[]string{"apps", "update", "web", "--when-none-healthy", "x"}, "use all or none"},
		{[]string{"apps", "update", "web"}, "nothing to update"},
	} {
		code, _, stderr := runCLI(t, append(tc.args, "--agent", sock)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
