package store

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// populated makes a data dir with an identity and enough records to span many
// pages, and returns the data file's path and content.
func populated(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveIdentity(Identity{Name: "h1", HostID: 42, PrivateKey: "k"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		slug := fmt.Sprintf("org-%03d-%s", i, strings.Repeat("x", 40))
		st := catalog.Stamp{Clock: uint64(i + 1), Node: 42}
		r := &catalog.Record{Kind: catalog.KindOrg, Key: slug, Gen: 1, Created: st, Version: st, Org: &catalog.Org{Slug: slug}}
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, "dogwood.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

// openAll opens, reads the identity and loads every record, as the agent does at
// start; a panic fails the test (the point of the exercise).
func openAll(dir string) (err error) {
	s, err := Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, _, err := s.Identity(); err != nil {
		return err
	}
	rs, err := s.Load()
	if err == nil && len(rs) != 300 {
		return fmt.Errorf("opened with %d of 300 records", len(rs))
	}
	return err
}

func wantCorrupt(t *testing.T, what string, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: %v, want ErrCorrupt", what, err)
	}
	msg := err.Error()
	for _, want := range []string{path, "dogwood restore", "move the file away", "new host"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%s: message %q lacks %q", what, msg, want)
		}
	}
}

func TestZeroLengthFileIsNotANewHost(t *testing.T) {
	path, _ := populated(t)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Dir(path))
	wantCorrupt(t, "zero-length", err, path)
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("Open wrote into the empty file (%d bytes): the evidence is gone", fi.Size())
	}
}

func TestTruncatedFile(t *testing.T) {
	path, b := populated(t)
	for _, n := range []int{100, 4096, len(b) / 2, len(b) - 4096} {
		if err := os.WriteFile(path, b[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		err := openAll(filepath.Dir(path))
		if err == nil && n == len(b)-4096 {
			continue // the last page was free: nothing lost, checked by openAll
		}
		wantCorrupt(t, fmt.Sprintf("truncated to %d of %d bytes", n, len(b)), err, path)
	}
}

// TestScribbledPages overwrites random stretches of every page but the two meta
// pages (a bad meta page alone is survivable: bbolt falls back to the other) and
// checks that opening either works with every record intact or fails with
// ErrCorrupt — never a panic, never a silently shorter catalog.
func TestScribbledPages(t *testing.T) {
	path, b := populated(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	const page = 4096
	pages := len(b) / page
	corrupt, intact := 0, 0
	for i := 0; i < 60; i++ {
		c := append([]byte(nil), b...)
		p := 2 + rng.Intn(pages-2)
		off := p*page + rng.Intn(page-64)
		n := 1 + rng.Intn(64)
		rng.Read(c[off : off+n])
		if i%3 == 0 { // sometimes the page header itself (id, flags, count)
			rng.Read(c[p*page : p*page+16])
		}
		if err := os.WriteFile(path, c, 0o600); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("seed %d, case %d (page %d): panic %v", seed, i, p, r)
				}
			}()
			err := openAll(filepath.Dir(path))
			switch {
			case err == nil:
				intact++
				s, _ := Open(filepath.Dir(path))
				rs, _ := s.Load()
				s.Close()
				if len(rs) != 300 {
					t.Errorf("seed %d, case %d: opened fine with %d of 300 records", seed, i, len(rs))
				}
			case errors.Is(err, ErrCorrupt):
				corrupt++
				if testing.Verbose() {
					t.Logf("case %d: %v", i, err)
				}
			default:
				t.Errorf("seed %d, case %d: %v, want nil or ErrCorrupt", seed, i, err)
			}
		}()
	}
	t.Logf("%d damaged files refused, %d harmless scribbles (unused page space)", corrupt, intact)
	if corrupt == 0 {
		t.Error("no scribble was detected")
	}
}
