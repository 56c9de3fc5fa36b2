package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// goldens are the data dirs earlier commits wrote (testdata/datadirs/gen.sh), with
// what each must hold: two hosts' records, two orgs, apps, machines started,
// stopped and destroyed (a tombstone), a user peer and, from cdad9dd on, custom
// DNS records.
var goldens = []struct {
	dir       string
	apps      []string
	dns       []string
	jsonVals  bool
	appByName bool // app keys without the org (before 7b13a38)
}{
	{dir: "v0.1.0", apps: []string{"acme/web", "o2/api"}, jsonVals: true, appByName: true},
	{dir: "7b13a38", apps: []string{"acme/api", "acme/web", "o2/api"}, dns: []string{"acme/default/db/AAAA/fdaa:0:1::5", "acme/default/www/CNAME"}, jsonVals: true},
	{dir: "4c0af38", apps: []string{"acme/api", "acme/web", "o2/api"}, dns: []string{"acme/default/db/AAAA/fdaa:0:1::5", "acme/default/www/CNAME"}},
	{dir: "v0.2.0", apps: []string{"acme/api", "acme/web", "o2/api"}, dns: []string{"acme/default/db/AAAA/fdaa:0:1::5", "acme/default/www/CNAME"}},
}

// copyGolden copies a golden data file into a fresh data dir.
func copyGolden(t *testing.T, name string) string {
	t.Helper()
	src, err := os.Open(filepath.Join("..", "..", "testdata", "datadirs", name, "dogwood.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := t.TempDir()
	dst, err := os.OpenFile(filepath.Join(dir, "dogwood.db"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rawRecords reads a data file's records bucket as stored: key → value.
func rawRecords(t *testing.T, path string) map[string][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]byte{}
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out
}

func TestGoldenDataDirsOpen(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.dir, func(t *testing.T) {
			dir := copyGolden(t, g.dir)
			before := rawRecords(t, filepath.Join(dir, "dogwood.db"))
			sawJSON, sawNameKey := false, false
			for k, v := range before {
				sawJSON = sawJSON || v[0] == '{'
				sawNameKey = sawNameKey || (catalog.Kind(k[0]) == catalog.KindApp && !bytes.Contains([]byte(k), []byte("/")))
			}
			if sawJSON != g.jsonVals || sawNameKey != g.appByName {
				t.Fatalf("golden holds JSON %v, name-only app keys %v; want %v, %v (regenerate with gen.sh?)", sawJSON, sawNameKey, g.jsonVals, g.appByName)
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			m := s.Migrated()
			if m == nil {
				t.Fatal("an older layout was not migrated")
			}
			t.Logf("%s → %s, %d records rewritten, %d dropped, backup %s", m.From, m.To, m.Rewritten, m.Dropped, filepath.Base(m.Backup))
			if got := rawRecords(t, m.Backup); !sameRaw(got, before) {
				t.Errorf("backup holds %d records, the file held %d (or they differ)", len(got), len(before))
			}
			id, ok, err := s.Identity()
			if err != nil || !ok || id.Name != "h1" || id.HostID == 0 || id.PrivateKey == "" {
				t.Errorf("identity %+v %v %v", id, ok, err)
			}
			rs, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if len(rs)+m.Dropped != len(before) {
				t.Errorf("loaded %d records (+%d dropped), the file held %d", len(rs), m.Dropped, len(before))
			}
			checkGolden(t, g.apps, g.dns, rs)
			s.Close()

			// Migrated once: the file is current now and stays as it is.
			after := rawRecords(t, filepath.Join(dir, "dogwood.db"))
			for k, v := range after {
				if v[0] == '{' || (catalog.Kind(k[0]) == catalog.KindApp && !bytes.Contains([]byte(k), []byte("/"))) {
					t.Errorf("record %q left in an older layout", k)
				}
			}
			s, err = Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m := s.Migrated(); m != nil {
				t.Errorf("migrated again: %+v", m)
			}
			s.Close()
			if again := rawRecords(t, filepath.Join(dir, "dogwood.db")); !sameRaw(again, after) {
				t.Error("a second open changed records")
			}
		})
	}
}

func sameRaw(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(b[k], v) {
			return false
		}
	}
	return true
}

// checkGolden finds every record gen-one.sh wrote.
func checkGolden(t *testing.T, apps, dns []string, rs []*catalog.Record) {
	t.Helper()
	live := map[catalog.Kind][]string{}
	tomb := map[catalog.Kind]int{}
	states := map[string]int{}
	for _, r := range rs {
		if r.Deleted {
			tomb[r.Kind]++
			continue
		}
		live[r.Kind] = append(live[r.Kind], r.Key)
		if r.Machine != nil {
			states[r.Machine.State+"@"+r.Machine.Host]++
		}
	}
	want := func(k catalog.Kind, keys ...string) {
		t.Helper()
		got := map[string]bool{}
		for _, key := range live[k] {
			got[key] = true
		}
		for _, key := range keys {
			if !got[key] {
				t.Errorf("%s %q missing; have %q", k, key, live[k])
			}
		}
	}
	want(catalog.KindHost, "h1", "h2")
	want(catalog.KindOrg, "acme", "o2")
	want(catalog.KindNetwork, "acme/default", "o2/default")
	want(catalog.KindApp, apps...)
	want(catalog.KindPeer, "acme/laptop")
	if len(live[catalog.KindApp]) != len(apps) {
		t.Errorf("apps %q, want %q", live[catalog.KindApp], apps)
	}
	if states["started@h1"] != 1 || states["stopped@h1"] != 2 || states["started@h2"] != 1 {
		t.Errorf("machines by state and host: %v", states)
	}
	if tomb[catalog.KindMachine] != 1 {
		t.Errorf("%d machine tombstones, want the destroyed one", tomb[catalog.KindMachine])
	}
	names := live[catalog.KindDNSRecord]
	if len(names) != len(dns) {
		t.Errorf("dns records %q, want %d like %q", names, len(dns), dns)
	}
}

// TestGoldenMarkedByV020: v0.2.0 marked a first-release file schema 2 before it
// refused its records; that file migrates like an unmarked one.
func TestGoldenMarkedByV020(t *testing.T) {
	dir := copyGolden(t, "v0.1.0")
	setSchema(t, dir, 2)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, goldens[0].apps, nil, rs)
}

// TestNewerReleaseNamed: the refusal names the release that wrote the file, and
// leaves the file as it was.
func TestNewerReleaseNamed(t *testing.T) {
	dir := copyGolden(t, "v0.2.0")
	setSchema(t, dir, SchemaVersion+1)
	db, err := bolt.Open(filepath.Join(dir, "dogwood.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyRelease, []byte("v9.1.0")) })
	db.Close()
	before, _ := os.ReadFile(filepath.Join(dir, "dogwood.db"))
	_, err = Open(dir)
	const want = "this data dir was written by a newer release (v9.1.0); run that release or newer"
	if err == nil || err.Error() != want {
		t.Fatalf("open: %v\nwant %s", err, want)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "dogwood.db"))
	if !bytes.Equal(before, after) {
		t.Error("a refused file changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("refusal left files beside the data file: %v", ents)
	}
}
