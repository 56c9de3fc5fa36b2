//go:build agent

package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dogwood/dogwood/mesh/store"
)

// TestAgentRefusesDamagedDataFile: an empty or truncated data file ends the agent
// with exit 1 and a message naming the file and the way out, without a stack trace
// and without touching the file.
func TestAgentRefusesDamagedDataFile(t *testing.T) {
	// A real data file to damage.
	good := t.TempDir()
	_, _, _, _, n := testAgent(t)
	f, err := os.Create(filepath.Join(good, "dogwood.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Backup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(filepath.Join(good, "dogwood.db"))

	for name, content := range map[string][]byte{"empty": {}, "truncated": b[:len(b)/3], "garbage": []byte(strings.Repeat("x", 20000))} {
		dir := t.TempDir()
		path := filepath.Join(dir, "dogwood.db")
		os.WriteFile(path, content, 0o600)
		code, out, errs := runCLI(t, "agent", "--name", "h9", "--data-dir", dir, "--insecure-no-gossip-key",
			"--wireguard", "off", "--gossip-addr", "127.0.0.1:0", "--api-socket", filepath.Join(dir, "api.sock"))
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s%s", name, code, out, errs)
		}
		for _, want := range []string{path, "damaged", "dogwood restore FILE", "move the file away"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", name, want, errs)
			}
		}
		if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
			t.Errorf("%s: stack trace:\n%s", name, errs)
		}
		if after, _ := os.ReadFile(path); string(after) != string(content) {
			t.Errorf("%s: the agent changed the damaged file", name)
		}
	}
}

// TestAgentRefusesNewerDataFile: a data dir a newer release wrote (its schema is
// past ours) ends the agent with exit 1 and the message naming that release, and
// the file stays as it was.
func TestAgentRefusesNewerDataFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dogwood.db")
	golden, err := os.ReadFile(filepath.Join("..", "..", "testdata", "datadirs", "v0.2.0", "dogwood.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, golden, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket([]byte("meta"))
		if err := m.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, store.SchemaVersion+1)); err != nil {
			return err
		}
		return m.Put([]byte("release"), []byte("v0.9.0"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	code, out, errs := runCLI(t, "agent", "--name", "h1", "--data-dir", dir, "--insecure-no-gossip-key",
		"--wireguard", "off", "--gossip-addr", "127.0.0.1:0", "--api-socket", filepath.Join(dir, "api.sock"))
	if code != 1 || !strings.Contains(errs, "this data dir was written by a newer release (v0.9.0); run that release or newer\n") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the agent changed a newer release's data file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files beside the refused data file: %v", ents)
	}
}
