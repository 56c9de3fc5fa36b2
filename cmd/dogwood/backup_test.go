//go:build agent

package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/api"
	"github.com/dogwood/dogwood/mesh/store"
)

// testAgent serves one node's API on a unix socket and on a TLS listener with a
// token, as the agent does.
func testAgent(t *testing.T) (sock, url, tokenFile, fingerprint string, n *mesh.Node) {
	t.Helper()
	dir := t.TempDir()
	n, err := mesh.Start(mesh.Config{Name: "h1", DataDir: filepath.Join(dir, "data"), Region: "ord",
		GossipAddr: "127.0.0.1:0", GossipKey: []byte("0123456789abcdef0123456789abcdef"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	sock = filepath.Join(dir, "api.sock")
	ln, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	cert, fp, err := api.LoadOrCreateCert(filepath.Join(dir, "data"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := api.Listen("127.0.0.1:0", api.TCPAPILimits(), &cert)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600)
	for l, s := range map[interface{ Close() error }]*http.Server{
		ln: api.NewHTTPServer(localRoutes((&api.Server{Node: n}).Handler(), map[string]http.HandlerFunc{
			"GET " + backupArchivePath: serveBackupArchive(n, filepath.Join(dir, "data"))}), api.UnixLimits(), nil),
		tl: api.NewHTTPServer((&api.Server{Node: n, Token: "tok-123", APIFingerprint: fp}).Handler(), api.TCPAPILimits(), nil),
	} {
		srv := s
		if l == ln {
			go srv.Serve(ln)
		} else {
			go srv.Serve(tl)
		}
		t.Cleanup(func() { srv.Close() })
	}
	return sock, "https://" + tl.Addr().String(), tokenFile, fp, n
}

func TestBackupCommand(t *testing.T) {
	sock, _, _, _, n := testAgent(t)
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	file := filepath.Join(t.TempDir(), "copy.db")
	os.WriteFile(file, []byte("previous"), 0o644) // replaced, and its mode with it
	code, out, errs := runCLI(t, "--agent", sock, "backup", file)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s %s", code, out, errs)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode %v (%v), want 0600", fi.Mode(), err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if code, out, errs := runCLI(t, "restore", "--data-dir", dir, file); code != 0 || !strings.Contains(out, fmt.Sprintf("restored host h1 (host id %08x)", n.HostID())) {
		t.Fatalf("restore: exit %d %s %s", code, out, errs)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatalf("the restored data file does not open: %v", err)
	}
	id, ok, _ := st.Identity()
	st.Close()
	if !ok || id.HostID != n.HostID() {
		t.Errorf("backup identity %+v, want host %08x", id, n.HostID())
	}
	// The agent holds its data dir: restoring into it is refused. A damaged
	// backup changes nothing.
	live := filepath.Join(filepath.Dir(sock), "data")
	if code, _, errs := runCLI(t, "restore", "--data-dir", live, file); code != 1 || !strings.Contains(errs, "an agent is running on") {
		t.Errorf("restore into a running agent's data dir: exit %d %s", code, errs)
	}
	b, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, b[:len(b)-2000], 0o600)
	before, _ := os.ReadFile(filepath.Join(dir, "dogwood.db"))
	if code, _, errs := runCLI(t, "restore", "--data-dir", dir, bad); code != 1 || !strings.Contains(errs, "nothing was changed") {
		t.Errorf("restore of a cut backup: exit %d %s", code, errs)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "dogwood.db")); !bytes.Equal(before, after) {
		t.Error("a refused restore changed the data dir")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".copy.db.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// Usage errors.
	if code, _, _ := runCLI(t, "--agent", sock, "backup"); code != 2 {
		t.Errorf("backup without FILE: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "--agent", sock, "backup", t.TempDir()); code != 2 {
		t.Errorf("backup into a directory: exit %d, want 2", code)
	}
	if code, _, errs := runCLI(t, "--agent", filepath.Join(t.TempDir(), "none.sock"), "backup", file+"2"); code != 1 || !strings.Contains(errs, "no agent") {
		t.Errorf("backup with no agent: exit %d %s", code, errs)
	}
	if _, err := os.Stat(file + "2"); err == nil {
		t.Error("a failed backup left a file")
	}
}

func TestRemoteAgentFlags(t *testing.T) {
	_, url, tokenFile, fp, _ := testAgent(t)
	code, out, errs := runCLI(t, "--agent", url, "--token-file", tokenFile, "--agent-fingerprint", fp, "status")
	if code != 0 || !strings.Contains(out, fp) {
		t.Fatalf("status over TLS: exit %d\n%s%s", code, out, errs)
	}
	t.Setenv("DOGWOOD_TOKEN", "tok-123")
	if code, out, errs := runCLI(t, "--agent", url, "--agent-fingerprint", fp, "members", "--json"); code != 0 {
		t.Errorf("DOGWOOD_TOKEN: exit %d %s%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--agent", url, "--agent-fingerprint", "sha256:" + strings.Repeat("0", 64), "status"}, 1, "does not match"},
		{[]string{"--agent", url, "status"}, 1, "certificate"},
		{[]string{"--agent", strings.Replace(url, "https", "http", 1), "--agent-fingerprint", fp, "status"}, 2, "only https"},
		{[]string{"--agent", url, "--agent-fingerprint", "nonsense", "status"}, 2, "fingerprint"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d %q%q, want %d and %q", tc.args, code, out, errs, tc.code, tc.msg)
		}
	}
	t.Setenv("DOGWOOD_TOKEN", "wrong")
	if code, _, errs := runCLI(t, "--agent", url, "--agent-fingerprint", fp, "status"); code != 1 || !strings.Contains(errs, "bearer") {
		t.Errorf("wrong token: exit %d %s", code, errs)
	}
}
