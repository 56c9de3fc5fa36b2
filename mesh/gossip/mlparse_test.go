package gossip

import (
	"errors"
	"log/slog"
	"reflect"
	"testing"
)

func TestParseMemberlistLine(t *testing.T) {
	for _, c := range []struct {
		in    string
		level slog.Level
		msg   string
		attrs []any
	}{
		{"2026/11/29 10:00:00 [ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=198.18.0.2:7946\n",
			slog.LevelWarn, "Decrypt packet failed: No installed keys could decrypt the message", []any{"from", "198.18.0.2:7946"}},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5000", slog.LevelDebug, "Stream connection", []any{"from", "127.0.0.1:5000"}},
		{"[WARN] memberlist: Binding to public address without encryption!", slog.LevelWarn, "Binding to public address without encryption!", nil},
		{"[INFO] memberlist: Suspect h2 has failed, no acks received", slog.LevelInfo, "Suspect h2 has failed, no acks received", nil},
		{"[WARN] memberlist: Failed to resolve x: 1 error occurred:\n\t* lookup x: no such host\n\n", slog.LevelWarn, "Failed to resolve x: lookup x: no such host", nil},
		{"no tag at all", slog.LevelInfo, "no tag at all", nil},
	} {
		l, m, a := parseMemberlistLine(c.in)
		if l != c.level || m != c.msg || !reflect.DeepEqual(a, c.attrs) {
			t.Errorf("%q:\n got %v %q %v\nwant %v %q %v", c.in, l, m, a, c.level, c.msg, c.attrs)
		}
	}
}

func TestFlattenErrors(t *testing.T) {
	err := errors.New("2 errors occurred:\n\t* dial tcp 198.18.0.2:7946: connection refused\n\t* dial tcp 198.18.0.3:7946: i/o timeout\n\n")
	want := "dial tcp 198.18.0.2:7946: connection refused; dial tcp 198.18.0.3:7946: i/o timeout"
	if got := errAttr(err).Value.String(); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}
