package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDNSModes(t *testing.T) {
	const head = "[Interface]\nPrivateKey = " + testPriv + "\nAddress = fdaa:0:18:a7b:d6b:0:a:2/120\n"
	const peer = "\n[Peer]\nPublicKey = " + testPub + "\nAllowedIPs = fdaa:0:18::/48\nEndpoint = 203.0.113.7:51820\nPersistentKeepalive = 15\n"
	for _, tc := range []struct {
		mode DNSMode
		want string
	}{
		{DNSFull, head + "DNS = fdaa:0:18::3\n" + peer},
		{DNSSplit, head +
			"PostUp = resolvectl dns %i fdaa:0:18::3\n" +
			"PostUp = resolvectl domain %i ~internal ~a.a.d.f.ip6.arpa\n" +
			"PostUp = resolvectl default-route %i false\n" + peer},
		{DNSNone, head + peer},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			dns := netip.MustParseAddr("fdaa:0:18::3")
			c, err := New(mustKey(t, testPriv), netip.MustParseAddr("fdaa:0:18:a7b:d6b:0:a:2"), dns,
				mustKey(t, testPub), netip.MustParsePrefix("fdaa:0:18::/48"), "203.0.113.7:51820")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SetDNSMode(tc.mode, dns); err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			// The file still works with dig/ping/proxy --config: the resolver
			// comes from the address when there is no DNS line.
			back, err := Parse(got)
			if err != nil {
				t.Fatalf("parse back: %v", err)
			}
			if tc.mode == DNSFull && (len(back.DNS) != 1 || back.DNS[0] != dns) {
				t.Errorf("DNS after parse: %v", back.DNS)
			}
		})
	}
	if _, err := ParseDNSMode("all"); err == nil || !strings.Contains(err.Error(), "full, split or none") {
		t.Errorf("ParseDNSMode(all) = %v", err)
	}
	for in, want := range map[string]DNSMode{"": DNSFull, "full": DNSFull, "split": DNSSplit, "none": DNSNone} {
		if got, err := ParseDNSMode(in); err != nil || got != want {
			t.Errorf("ParseDNSMode(%q) = %q, %v", in, got, err)
		}
	}
}

func TestWithoutPrivateKey(t *testing.T) {
	c, err := New(mustKey(t, testPriv), netip.MustParseAddr("fdaa:0:18:a7b:d6b:0:a:2"), netip.MustParseAddr("fdaa:0:18::3"),
		mustKey(t, testPub), netip.MustParsePrefix("fdaa:0:18::/48"), "203.0.113.7:51820")
	if err != nil {
		t.Fatal(err)
	}
	pub := mustKey(t, testPriv).PublicKey()
	c.WithoutPrivateKey(pub)
	got, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	if strings.Contains(s, testPriv) || strings.Contains(s, "\nPrivateKey") {
		t.Errorf("file has a private key:\n%s", s)
	}
	if !strings.HasPrefix(s, "[Interface]\n# PrivateKey = <the private key of "+pub.String()+">\n") {
		t.Errorf("file does not say where the key goes:\n%s", s)
	}
	// Adding the key by hand gives a working file.
	fixed := strings.Replace(s, "# PrivateKey = <the private key of "+pub.String()+">", "PrivateKey = "+testPriv, 1)
	if _, err := Parse([]byte(fixed)); err != nil {
		t.Errorf("file with the key added: %v", err)
	}
	c.PostUp = []string{"echo a\nPrivateKey = x"}
	if _, err := Marshal(c); err == nil {
		t.Error("a PostUp command with a newline was rendered")
	}
}
