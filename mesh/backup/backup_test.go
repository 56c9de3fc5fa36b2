package backup

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBolt is enough of a bbolt file for the format sniffing (the real
// round trip through bbolt is cmd/dogwood's TestBackupCommand).
func fakeBolt() []byte {
	b := make([]byte, 4096)
	copy(b[16:], []byte{0xed, 0xda, 0x0c, 0xed})
	copy(b[100:], "catalog")
	return b
}

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func archive(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	db := fakeBolt()
	err := Write(&buf, dir, func(w io.Writer) (int64, error) { n, err := w.Write(db); return int64(n), err }, "h1", 0xabc, time.Unix(1e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	src := writeDir(t, map[string]string{"dogwood.db": "live file, copied through copyDB instead",
		"invite-tls.pem": "CERT", "invites.json": `{"x":1}`, "api-cert.pem": "A", "api-key.pem": "K",
		".backup-1.tmp": "spool", "invites.json.123.tmp": "partial"})
	a := archive(t, src)
	stage := t.TempDir()
	m, err := Extract(bytes.NewReader(a), stage)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != Format || m.Host != "h1" || m.HostID != 0xabc || len(m.Files) != 5 {
		t.Fatalf("manifest %+v", m)
	}
	dst := writeDir(t, map[string]string{"dogwood.db": "the damaged one", "stray": "x"})
	aside, err := Install(stage, dst, m, time.Unix(2e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]string{"invite-tls.pem": "CERT", "invites.json": `{"x":1}`, "api-cert.pem": "A", "api-key.pem": "K", "dogwood.db": string(fakeBolt())} {
		if b, _ := os.ReadFile(filepath.Join(dst, n)); string(b) != want {
			t.Errorf("restored %s = %.40q, want %.40q", n, b, want)
		}
	}
	// Nothing the data dir held is lost.
	for n, want := range map[string]string{"dogwood.db": "the damaged one", "stray": "x"} {
		if b, _ := os.ReadFile(filepath.Join(aside, n)); string(b) != want {
			t.Errorf("moved aside %s = %q, want %q", n, b, want)
		}
	}
	// A check alone writes nothing.
	if _, err := Extract(bytes.NewReader(a), ""); err != nil {
		t.Errorf("check only: %v", err)
	}
}

func TestDamagedBackupsAreRefused(t *testing.T) {
	a := archive(t, writeDir(t, map[string]string{"invite-tls.pem": "CERT"}))
	flip := append([]byte(nil), a...)
	i := bytes.Index(flip, []byte("CERT"))
	flip[i] = 'X'
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"flipped byte": {flip, "invite-tls.pem does not match its checksum"},
		"cut short":    {a[:len(a)/2], "cut short"},
		"no manifest":  {a[:bytes.Index(a, []byte("manifest.json"))], "no manifest"},
		"not a backup": {[]byte(strings.Repeat("hello ", 200)), "not a Dogwood backup"},
		"newer format": {bytes.Replace(a, []byte(`"format": 1`), []byte(`"format": 9`), 1), "newer release"},
		"empty":        {nil, "not a Dogwood backup"},
	} {
		_, err := Extract(bytes.NewReader(tc.data), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !IsBackupError(err) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// What `dogwood backup` wrote before the archive, a bare data file, restores.
func TestBareDataFile(t *testing.T) {
	stage := t.TempDir()
	m, err := Extract(bytes.NewReader(fakeBolt()), stage)
	if err != nil || m.Format != 0 || len(m.Files) != 1 || m.Files[0].Name != DataFile {
		t.Fatalf("%+v %v", m, err)
	}
	if b, _ := os.ReadFile(filepath.Join(stage, DataFile)); !bytes.Equal(b, fakeBolt()) {
		t.Error("data file not extracted as it was")
	}
}
