package config

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"rsc.io/qr"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	c, err := New(mustKey(t, testPriv), netip.MustParseAddr("fdaa:0:18:a7b:d6b:0:a:2"),
		netip.MustParseAddr("fdaa:0:18::3"), mustKey(t, testPub),
		netip.MustParsePrefix("fdaa:0:18::/48"), "[2001:db8::10]:51820")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteCreatesPrivateFile(t *testing.T) {
	c := testConfig(t)
	path := filepath.Join(t.TempDir(), "peer.conf")
	if err := Check(path); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Fatalf("Check left files behind: %v", entries)
	}
	if err := Write(path, c, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	got, _ := os.ReadFile(path)
	want, _ := os.ReadFile("testdata/peer.conf")
	if !bytes.Equal(got, want) {
		t.Errorf("file content:\n%s", got)
	}

	// Never overwrite: both Check and Write refuse, and the file is intact.
	if err := Check(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Check on existing file = %v", err)
	}
	other := c
	other.PersistentKeepalive = 25
	if err := Write(path, other, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Write on existing file = %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, want) {
		t.Error("existing file was modified")
	}
}

func TestCheckFailures(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(dir, "missing", "peer.conf"), // no parent
		filepath.Join(file, "peer.conf"),           // parent is a file
		dangling,                                   // O_EXCL would refuse it too
		"",
	} {
		if err := Check(p); err == nil {
			t.Errorf("Check(%q) = nil, want error", p)
		}
	}
	if os.Geteuid() != 0 { // root ignores permission bits
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		if err := Check(filepath.Join(ro, "peer.conf")); err == nil {
			t.Error("Check in read-only directory = nil")
		}
	}
}

func TestWriteStdout(t *testing.T) {
	for _, p := range []string{"-", "stdout"} {
		if err := Check(p); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Write(p, testConfig(t), &buf); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile("testdata/peer.conf")
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: got %q", p, buf.String())
		}
	}
}

func TestWriteRejectsInvalidConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.conf")
	c := testConfig(t)
	c.Endpoint = ""
	if err := Write(path, c, nil); err == nil {
		t.Fatal("Write of invalid config succeeded")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("invalid config left a file: %v", err)
	}
}

// TestQR decodes the half-block rendering back into modules and compares it
// with an independent encoding of the same text, so a wrong character
// mapping (an inverted or garbled code) fails.
func TestQR(t *testing.T) {
	c := testConfig(t)
	var buf bytes.Buffer
	if err := WriteQR(&buf, c); err != nil {
		t.Fatal(err)
	}
	data, _ := Marshal(c)
	code, err := qr.Encode(string(data), qr.L)
	if err != nil {
		t.Fatal(err)
	}
	const quiet = 2
	rows := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	// Each text row holds two module rows: top half, bottom half.
	var grid [][]bool // true = dark module
	for _, row := range rows {
		var top, bottom []bool
		for _, r := range row {
			switch r {
			case ' ': // both dark (dark terminal background)
				top, bottom = append(top, true), append(bottom, true)
			case '█':
				top, bottom = append(top, false), append(bottom, false)
			case '▀':
				top, bottom = append(top, false), append(bottom, true)
			case '▄':
				top, bottom = append(top, true), append(bottom, false)
			default:
				t.Fatalf("unexpected rune %q in QR output", r)
			}
		}
		grid = append(grid, top, bottom)
	}
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if got := grid[quiet+y][quiet+x]; got != code.Black(x, y) {
				t.Fatalf("module (%d,%d) dark=%v, want %v", x, y, got, code.Black(x, y))
			}
		}
	}
	// The quiet zone around the code must be light.
	for x := 0; x < code.Size+2*quiet; x++ {
		if grid[0][x] || grid[1][x] {
			t.Fatalf("quiet zone not light at column %d", x)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if priv.PublicKey() != pub || priv == pub {
		t.Fatal("public key does not match private key")
	}
	priv2, _, _ := GenerateKey()
	if priv2 == priv {
		t.Fatal("two generated keys are equal")
	}
}

func TestReadFile(t *testing.T) {
	c, err := ReadFile("testdata/peer.conf")
	if err != nil || c.Endpoint != "[2001:db8::10]:51820" {
		t.Fatalf("%+v, %v", c, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("[Interface]\nAddress = nope\n"), 0o600)
	_, err = ReadFile(bad)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.HasPrefix(err.Error(), bad+": wireguard config: line 2: ") {
		t.Errorf("error = %v", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error = %v", err)
	}
}
