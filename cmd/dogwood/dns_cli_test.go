package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Bad `dns` input is exit 2 with the reason, decided before any agent is asked
// (the socket here does not exist, so reaching it would be exit 1).
func TestDNSBadInput(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dns", "add", "acme", "db", "AAAA", "10.0.0.1"}, "not an IPv6 address"},
		{[]string{"dns", "add", "acme", "db", "A", "fdaa::1"}, "not an IPv4 address"},
		{[]string{"dns", "add", "acme", "db", "MX", "10 mail"}, "use one of AAAA, A, CNAME, TXT, SRV, ALIAS"},
		{[]string{"dns", "add", "acme", "_apps", "TXT", "x"}, "collides with Dogwood's generated name _apps.internal"},
		{[]string{"dns", "add", "acme", "vms.db", "TXT", "x"}, "shape of a generated name"},
		{[]string{"dns", "add", "acme", "*", "TXT", "x"}, "wildcard directly under internal."},
		{[]string{"dns", "add", "acme", "x", "SRV", "10 5 db"}, "PRIORITY WEIGHT PORT TARGET"},
		{[]string{"dns", "add", "acme", "x", "TXT", "a\tb"}, "control character"},
		{[]string{"dns", "add", "acme", "x", "AAAA", "::1", "--ttl", "-1"}, "negative"},
		{[]string{"dns", "add", "acme", "x", "AAAA", "::1", "--ttl", "90000"}, "above 86400"},
		{[]string{"dns", "add", "x", "AAAA"}, "usage: dogwood dns add [ORG] NAME TYPE VALUE"},
		{[]string{"dns", "add", "Acme!", "x", "AAAA", "::1"}, "invalid org slug"},
		{[]string{"dns", "remove", "acme", "x", "MX"}, "use one of"},
		{[]string{"dns", "remove", "acme", "_peer"}, "collides"},
	} {
		code, _, stderr := runCLI(t, append(tc.args, "--agent", sock)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
