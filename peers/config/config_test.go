package config

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const (
	testPriv = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	testPub  = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
)

func mustKey(t testing.TB, s string) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMarshalGolden(t *testing.T) {
	for _, tc := range []struct {
		golden, addr, endpoint string
	}{
		{"peer.conf", "fdaa:0:18:a7b:d6b:0:a:2", "2001:db8::10"},           // bare IPv6, default port
		{"peer-v4.conf", "fdaa:0:18:a7b:d6b:0:a:102", "203.0.113.7:51820"}, // explicit port
	} {
		t.Run(tc.golden, func(t *testing.T) {
			c, err := New(mustKey(t, testPriv), netip.MustParseAddr(tc.addr),
				netip.MustParseAddr("fdaa:0:18::3"), mustKey(t, testPub),
				netip.MustParsePrefix("fdaa:0:18::/48"), tc.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Marshal mismatch\n got:\n%s\nwant:\n%s", got, want)
			}
			// And back: the file must parse to the same config.
			back, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("round trip changed the file:\n%s", again)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":            "203.0.113.7:51820",
		"203.0.113.7:4000":       "203.0.113.7:4000",
		"2001:db8::1":            "[2001:db8::1]:51820",
		"[2001:db8::1]":          "[2001:db8::1]:51820",
		"[2001:db8::1]:4000":     "[2001:db8::1]:4000",
		"::ffff:203.0.113.7":     "203.0.113.7:51820",
		"gw.example.com":         "gw.example.com:51820",
		" gw.example.com:51821 ": "gw.example.com:51821",
	} {
		got, err := Endpoint(in, DefaultPort)
		if err != nil || got != want {
			t.Errorf("Endpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "gw.example.com:0", "gw.example.com:70000", "gw example.com", "[2001:db8::1]:x", "a:b:c"} {
		if got, err := Endpoint(in, DefaultPort); err == nil {
			t.Errorf("Endpoint(%q) = %q, want error", in, got)
		}
	}
}

func TestParseWgQuickVariants(t *testing.T) {
	in := "\uFEFF# written by hand\n" +
		"  [interface]  \n" +
		"privatekey=" + testPriv + "   # secret\n" +
		"ADDRESS = fdaa:0:18:a7b:d6b:0:a:2/120, 10.0.0.2\n" +
		"Address = fd00::1/64\n" +
		"DNS = fdaa:0:18::3,1.1.1.1 , internal\n" +
		"MTU = 1280\n" +
		"PostUp = echo up\n" +
		"Table = off\n" +
		"\n\n" +
		"[PEER]\n" +
		"\tPublicKey\t=\t" + testPub + "\n" +
		"AllowedIPs = fdaa:0:18::1/48\n" +
		"AllowedIPs = 10.0.0.0/8\n" +
		"Endpoint = gw.example.com:51820\n" +
		"PersistentKeepalive = off\n"
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	wantAddr := []netip.Prefix{
		netip.MustParsePrefix("fdaa:0:18:a7b:d6b:0:a:2/120"),
		netip.MustParsePrefix("10.0.0.2/32"),
		netip.MustParsePrefix("fd00::1/64"),
	}
	if !equal(c.Address, wantAddr) {
		t.Errorf("Address = %v, want %v", c.Address, wantAddr)
	}
	if want := []netip.Addr{netip.MustParseAddr("fdaa:0:18::3"), netip.MustParseAddr("1.1.1.1")}; !equal(c.DNS, want) {
		t.Errorf("DNS = %v, want %v", c.DNS, want)
	}
	if len(c.DNSSearch) != 1 || c.DNSSearch[0] != "internal" {
		t.Errorf("DNSSearch = %v", c.DNSSearch)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("fdaa:0:18::/48"), netip.MustParsePrefix("10.0.0.0/8")}; !equal(c.AllowedIPs, want) {
		t.Errorf("AllowedIPs = %v, want %v (masked)", c.AllowedIPs, want)
	}
	if c.PrivateKey.String() != testPriv || c.PublicKey.String() != testPub {
		t.Errorf("keys = %s / %s", c.PrivateKey, c.PublicKey)
	}
	if c.MTU != 1280 || c.PersistentKeepalive != 0 || c.Endpoint != "gw.example.com:51820" {
		t.Errorf("MTU=%d keepalive=%d endpoint=%q", c.MTU, c.PersistentKeepalive, c.Endpoint)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/peer.conf")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(good), "\n"), "\n")
	// edit returns the golden file with line n (1-based) replaced; "" deletes it.
	edit := func(n int, repl string) string {
		out := append([]string(nil), lines...)
		if repl == "" {
			out = append(out[:n-1], out[n:]...)
		} else {
			out[n-1] = repl
		}
		return strings.Join(out, "\n") + "\n"
	}
	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"bad base64 key", edit(2, "PrivateKey = not-base64!"), 2, "not a base64-encoded 32-byte key"},
		{"short key", edit(7, "PublicKey = AAAA"), 7, "not a base64-encoded 32-byte key"},
		{"bad address", edit(3, "Address = fdaa::zz/120"), 3, "bad address"},
		{"bad prefix len", edit(3, "Address = fdaa::2/129"), 3, "bad address"},
		{"bad dns", edit(4, "DNS = 1.2.3.4, not a name"), 4, "bad dns"},
		{"unknown section", edit(6, "[Peers]"), 6, `unknown section "[Peers]"`},
		{"unknown key", edit(10, "KeepAlive = 15"), 10, `unknown key "keepalive"`},
		{"no equals", edit(8, "AllowedIPs fdaa:0:18::/48"), 8, "expected"},
		{"endpoint without port", edit(9, "Endpoint = 2001:db8::10"), 9, "has no port"},
		{"endpoint bad port", edit(9, "Endpoint = gw:99999"), 9, "bad endpoint"},
		{"keepalive range", edit(10, "PersistentKeepalive = 70000"), 10, "bad persistentkeepalive"},
		{"duplicate key", edit(5, "PrivateKey = "+testPriv), 5, "duplicate key"},
		{"missing private key", edit(2, ""), 1, "no PrivateKey"},
		{"missing address", edit(3, ""), 1, "no Address"},
		{"missing public key", edit(7, ""), 6, "no PublicKey"},
		{"missing allowed ips", edit(8, ""), 6, "no AllowedIPs"},
		{"missing endpoint", edit(9, ""), 6, "no Endpoint"},
		{"missing peer", strings.Join(lines[:4], "\n"), 0, "no [Peer] section"},
		{"missing interface", strings.Join(lines[5:], "\n"), 0, "no [Interface] section"},
		{"key before section", "PrivateKey = " + testPriv + "\n" + string(good), 1, "outside of a section"},
		{"two peers", string(good) + "[Peer]\n", 11, "second [Peer]"},
		{"empty list item", edit(8, "AllowedIPs = fdaa:0:18::/48,,"), 8, "empty item"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error = %v, want *ParseError", err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("got %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.msg)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/peer.conf", "testdata/peer-v4.conf"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[Interface]\nAddress = 10.0.0.1, fd00::1/64\nDNS = a, 1.1.1.1\n[Peer]\nEndpoint=[::1]:1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		// Whatever parses must render, and the rendering must parse to
		// the same file again (Marshal ∘ Parse is idempotent).
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("parsed config does not marshal: %v\n%q", err, data)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, out)
		}
		out2, err := Marshal(c2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("not idempotent: %v\n%s\n---\n%s", err, out, out2)
		}
	})
}
