package invite

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecode: any input either fails with ErrBadCode or decodes to a code that
// encodes back to the same text (so a code has exactly one spelling, and what
// join sends is what the gateway issued).
func FuzzDecode(f *testing.F) {
	var c Code
	c.Endpoint = "198.18.0.1:51821"
	c.Pin[0], c.Secret[0] = 1, 2
	f.Add(c.Encode())
	f.Add("dwinv1_")
	f.Add("dwinv1_AAAA")
	c.Endpoint = "[2001:db8::1]:51821"
	f.Add(c.Encode())
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Decode(s)
		if err != nil {
			if !errors.Is(err, ErrBadCode) {
				t.Fatalf("Decode(%q) = %v, not ErrBadCode", s, err)
			}
			return
		}
		if enc := got.Encode(); enc != strings.TrimSpace(s) {
			t.Fatalf("Decode(%q) re-encodes to %q", s, enc)
		}
	})
}
