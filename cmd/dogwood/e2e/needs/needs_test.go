package needs

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a *testing.T: it records what skip asked for.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestSkipFailsUnderCI(t *testing.T) {
	for _, tc := range []struct {
		ci         bool
		skip, fail bool
	}{{ci: false, skip: true}, {ci: true, fail: true}} {
		r := &recorder{}
		skip(r, tc.ci, "no frobnicator")
		if (r.skipped != "") != tc.skip || (r.failed != "") != tc.fail {
			t.Errorf("ci=%v: skipped %q failed %q", tc.ci, r.skipped, r.failed)
		}
		if msg := r.skipped + r.failed; msg == "" || !strings.Contains(msg, "no frobnicator") {
			t.Errorf("ci=%v: the message lost the reason: %q", tc.ci, msg)
		}
	}
}

func TestCIFromEnvironment(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "": false, "false": false, "yes please": false} {
		t.Setenv("CI", v)
		if got := CI(); got != want {
			t.Errorf("CI=%q: %v, want %v", v, got, want)
		}
	}
	t.Setenv("CI", "true")
	r := &recorder{}
	Tools(r, "dogwood-no-such-tool-xyz")
	if r.failed == "" || r.skipped != "" {
		t.Errorf("a missing tool under CI=true: skipped %q failed %q", r.skipped, r.failed)
	}
	t.Setenv("CI", "")
	r = &recorder{}
	Tools(r, "dogwood-no-such-tool-xyz", "sh")
	if r.skipped == "" || r.failed != "" || !strings.Contains(r.skipped, "dogwood-no-such-tool-xyz") || strings.Contains(r.skipped, "sh,") {
		t.Errorf("a missing tool outside CI: skipped %q failed %q", r.skipped, r.failed)
	}
}
