package containers

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestRootOnly(t *testing.T) {
	h := RootOnly(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	// No credentials known (not the unix socket): refused.
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("without credentials: %d", rec.Code)
	}
	// Over a unix socket, the caller's uid decides.
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: ConnContext}
	go srv.Serve(l)
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://agent/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := http.StatusForbidden
	if os.Geteuid() == 0 {
		want = http.StatusTeapot
	}
	if resp.StatusCode != want {
		t.Errorf("uid %d over the socket: %d, want %d", os.Geteuid(), resp.StatusCode, want)
	}
}
