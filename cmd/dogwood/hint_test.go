//go:build agent

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"github.com/dogwood/dogwood/peers/config"
)

func TestWgQuickArg(t *testing.T) {
	for _, tc := range []struct{ file, arg, problem string }{
		{"acme.conf", "./acme.conf", ""},
		{"./acme.conf", "./acme.conf", ""},
		{"/home/a/wg/acme.conf", "/home/a/wg/acme.conf", ""},
		{"wg/acme.conf", "wg/acme.conf", ""},
		{"my laptop.conf", "'./my laptop.conf'", "interface"},
		{"alice-laptop-acme.conf", "./alice-laptop-acme.conf", "at most 15"},
		{"acme.wg", "./acme.wg", "INTERFACE.conf"},
	} {
		arg, problem := wgQuickArg(tc.file)
		if arg != tc.arg || (tc.problem == "") != (problem == "") || !strings.Contains(problem, tc.problem) {
			t.Errorf("wgQuickArg(%q) = %q, %q; want %q and a problem naming %q", tc.file, arg, problem, tc.arg, tc.problem)
		}
	}
}

// TestJoinHintRunsAsPrinted hands the wg-quick command `wireguard join`
// prints to the real wg-quick (its strip subcommand reads the file and
// changes nothing): the hint must name the file wg-quick will read.
func TestJoinHintRunsAsPrinted(t *testing.T) {
	needTool(t, "checks the join hint against the real wg-quick", "wg-quick", "wg")
	if os.Geteuid() != 0 {
		needs.Skip(t, "wg-quick wants root (it would ask sudo)")
	}
	dir := t.TempDir()
	conf := "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = fdaa:0:18:a7b:d6b:0:a:2/120\n\n" +
		"[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = fdaa:0:18::/48\nEndpoint = 198.18.0.1:51820\n"
	if err := os.WriteFile(filepath.Join(dir, "acme.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []config.DNSMode{config.DNSFull, config.DNSNone} {
		hint := joinNextSteps("acme.conf", mode)
		f := strings.Fields(strings.TrimPrefix(hint, "next: "))
		if len(f) < 4 || f[0] != "sudo" || f[1] != "wg-quick" || f[2] != "up" {
			t.Fatalf("hint %q does not start with sudo wg-quick up FILE", hint)
		}
		cmd := exec.Command("wg-quick", "strip", strings.TrimSuffix(f[3], ","))
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "AllowedIPs") {
			t.Errorf("the hint %q names a file wg-quick does not read: %v\n%s", hint, err, out)
		}
	}
}

// --public-endpoint without a port takes --wg-port, as the unset default does.
func TestGatewayEndpoint(t *testing.T) {
	for _, tc := range []struct {
		o       agentOptions
		want    string
		wantErr bool
	}{
		{agentOptions{Gateway: true, PublicEndpoint: "203.0.113.10", WGPort: 51820}, "203.0.113.10:51820", false},
		{agentOptions{Gateway: true, PublicEndpoint: "203.0.113.10", WGPort: 51999}, "203.0.113.10:51999", false},
		{agentOptions{Gateway: true, PublicEndpoint: "203.0.113.10:4444", WGPort: 51820}, "203.0.113.10:4444", false},
		{agentOptions{Gateway: true, PublicEndpoint: "gw.example.com", WGPort: 51820}, "gw.example.com:51820", false},
		{agentOptions{Gateway: true, PublicEndpoint: "2001:db8::1", WGPort: 51820}, "[2001:db8::1]:51820", false},
		{agentOptions{Gateway: true, PublicEndpoint: "[2001:db8::1]", WGPort: 51820}, "[2001:db8::1]:51820", false},
		{agentOptions{Gateway: true, PublicEndpoint: "[2001:db8::1]:9", WGPort: 51820}, "[2001:db8::1]:9", false},
		{agentOptions{Gateway: true, Advertise: "198.18.0.1:7946", WGPort: 51820}, "198.18.0.1:51820", false},
		{agentOptions{Gateway: true, Advertise: "198.18.0.1", WGPort: 51820}, "198.18.0.1:51820", false},
		{agentOptions{Gateway: true, GossipAddr: "198.18.0.2:7946", WGPort: 51820}, "198.18.0.2:51820", false},
		{agentOptions{GossipAddr: "198.18.0.2:7946", WGPort: 51820}, "", false},
		{agentOptions{Gateway: true, PublicEndpoint: "203.0.113.10:99999", WGPort: 51820}, "", true},
		{agentOptions{Gateway: true, PublicEndpoint: ":51820", WGPort: 51820}, "", true},
		{agentOptions{Gateway: true, PublicEndpoint: "a b", WGPort: 51820}, "", true},
		{agentOptions{Gateway: true, PublicEndpoint: "fdaa::1::2", WGPort: 51820}, "", true},
	} {
		got, err := gatewayEndpoint(tc.o)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("gatewayEndpoint(%+v) = %q, %v; want %q (error %v)", tc.o, got, err, tc.want, tc.wantErr)
		}
		var ue *usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("%q: %v is not a usage error (exit 2)", tc.o.PublicEndpoint, err)
		}
	}
}
