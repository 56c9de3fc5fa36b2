package gossip

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/mesh/release"
)

func TestVersionsFromMeta(t *testing.T) {
	cases := []struct {
		name       string
		meta       string
		unsealed   bool
		protocol   int
		release    string
		compatible bool
		problem    string
	}{
		{name: "this release", meta: string(encodeMeta(7, 512)), protocol: Protocol, release: release.Version, compatible: true},
		{name: "v0.2.0 meta", meta: `{"v":1,"id":7}`, protocol: 2, release: "0.2.0 or older", compatible: true},
		{name: "v0.1.0: same meta, unsealed traffic", meta: `{"v":1,"id":7}`, unsealed: true, protocol: 1, release: "0.1.0",
			problem: "h2 runs v0.1.0 (gossip protocol 1, messages without the replay seal); this host runs v" + release.Version},
		{name: "advertised members never turn 1", meta: string(encodeMeta(7, 512)), unsealed: true, protocol: Protocol, release: release.Version, compatible: true},
		{name: "next release", meta: `{"v":1,"id":7,"p":4,"m":3,"r":"0.4.0"}`, protocol: 4, release: "0.4.0", compatible: true},
		{name: "next release, no min", meta: `{"v":1,"id":7,"p":4,"r":"0.4.0"}`, protocol: 4, release: "0.4.0", compatible: true},
		{name: "a release that dropped ours", meta: `{"v":1,"id":7,"p":5,"m":4,"r":"0.5.0"}`, protocol: 5, release: "0.5.0",
			problem: "h2 runs v0.5.0 (gossip protocol 5); this host runs v" + release.Version + " (protocol 3): upgrade this host"},
		{name: "garbage meta", meta: `not json`, protocol: 2, release: "0.2.0 or older", compatible: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			v := newVersions("h1", slog.New(slog.NewTextHandler(&logs, nil)))
			v.Observe("h2", []byte(c.meta))
			if c.unsealed {
				v.unsealed("h2")
				v.unsealed("h2")
				v.Observe("h2", []byte(c.meta)) // an update with the same meta keeps what traffic showed
			}
			mv, ok := v.Member("h2")
			if !ok || mv.Protocol != c.protocol || mv.Release != c.release || mv.Compatible != c.compatible || !strings.HasPrefix(mv.Problem, c.problem) {
				t.Fatalf("got %+v", mv)
			}
			err := v.CallError("h2")
			var ve *versionError
			if c.compatible != (err == nil) || (err != nil && !errors.As(err, &ve)) {
				t.Errorf("call error %v", err)
			}
			warns := strings.Count(logs.String(), "level=WARN")
			if want := map[bool]int{true: 0, false: 1}[c.compatible]; warns != want {
				t.Errorf("%d WARN lines, want %d:\n%s", warns, want, logs.String())
			}
			if !c.compatible && (!strings.Contains(logs.String(), "member=h2") || !strings.Contains(logs.String(), "member_protocol=") || !strings.Contains(logs.String(), "protocol=3")) {
				t.Errorf("WARN does not name the member and both versions:\n%s", logs.String())
			}
		})
	}
}

func TestVersionsSpeakOldest(t *testing.T) {
	v := newVersions("h1", slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if got := v.speak(); got != Protocol {
		t.Fatalf("alone: speak %d", got)
	}
	v.Observe("h2", encodeMeta(2, 512))
	v.Observe("h3", []byte(`{"v":1,"id":3}`))
	if got := v.speak(); got != 2 {
		t.Errorf("with a v0.2.0 member: speak %d, want 2", got)
	}
	v.Observe("h4", []byte(`{"v":1,"id":4}`))
	v.unsealed("h4") // protocol 1: cannot talk to it at all, so it holds nobody back
	v.Gone("h3")
	if got := v.speak(); got != Protocol {
		t.Errorf("v0.2.0 member gone, a v0.1.0 one left: speak %d, want %d", got, Protocol)
	}
	if d := v.describe("h2"); d != "" {
		t.Errorf("same release described as %q", d)
	}
}

func TestUnsealedSender(t *testing.T) {
	for in, want := range map[string]string{
		"\x02" + `{"from":"old1","addr":"1.2.3.4:7946","root":5}`: "old1",
		"\x06" + `{"id":1,"from":"old2","op":"x","body":null}`:    "old2",
		"\x08" + `"old3"`: "old3",
		"\x01" + `[]`:     "",
		"\xd0xxxxxxxx":    "",
		"":                "",
	} {
		if got := unsealedSender([]byte(in)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// TestCompactOnlyWhenEveryMemberReadsIt: the tree's compact messages wait for the
// last member of the release before to go (or to be upgraded).
func TestCompactOnlyWhenEveryMemberReadsIt(t *testing.T) {
	v := newVersions("h1", slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	v.Observe("h2", encodeMeta(2, 512))
	if !v.readsCompact() {
		t.Fatal("every member on this release: compact should be on")
	}
	v.Observe("h3", []byte(`{"v":1,"id":3}`)) // v0.2.0
	if v.readsCompact() {
		t.Fatal("a v0.2.0 member joined: compact must be off")
	}
	v.Observe("h3", encodeMeta(3, 512)) // h3 upgraded in place
	if !v.readsCompact() {
		t.Fatal("h3 upgraded: compact should be on again")
	}
}
