package schema

import (
	"math/rand"
	"regexp"
	"testing"
)

// The hand-written name rules accept exactly what the regular expressions
// they replaced accepted.
func TestNameRulesMatchTheirRegexps(t *testing.T) {
	for _, tc := range []struct {
		rule nameRule
		re   string
	}{
		{reSlug, `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`},
		{reRegion, `^[a-z0-9]{2,16}$`},
		{reHost, `^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`},
		{rePeer, `^[a-zA-Z0-9-]{1,63}$`},
		{reLabel, `^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`},
		{reMachine, `^[0-9a-f]{14}$`},
		{reNetns, `^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`},
		{reRequest, `^[A-Za-z0-9_-]{1,64}$`},
	} {
		re := regexp.MustCompile(tc.re)
		seed := int64(len(tc.re))
		rng := rand.New(rand.NewSource(seed))
		const alphabet = "abcfgzAZ09_-.+ /é\\x00"
		for i := 0; i < 20000; i++ {
			n := rng.Intn(70)
			b := make([]byte, n)
			for j := range b {
				b[j] = alphabet[rng.Intn(len(alphabet))]
			}
			s := string(b)
			if got, want := tc.rule.MatchString(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp %v (seed %d)", tc.re, s, got, want, seed)
			}
		}
		for _, s := range []string{"", "a", "-", "a-", "-a", "ab", "0123456789abcd", "web", "x.y", "x_y"} {
			if got, want := tc.rule.MatchString(s), re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, regexp %v", tc.re, s, got, want)
			}
		}
	}
}
