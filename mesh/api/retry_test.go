package api

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/apiclient"
)

// TestCreateRetriedAfterLostAnswer: machines, apps and peers created with a request id
// are created once although the client saw its first attempts fail, and DoRetry gets
// the first result.
func TestCreateRetriedAfterLostAnswer(t *testing.T) {
	n, _ := startNode(t)
	inner := (&Server{Node: n, Version: "test"}).Handler()
	var drops atomic.Int32
	drops.Store(2)
	// The first calls are served but their connection is closed before the answer
	// (the client sees EOF), as when an agent crashes between persisting and answering.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(&discard{}, r) // the operation runs; its answer is lost
		r.Body = io.NopCloser(bytes.NewReader(body))
		if drops.Add(-1) >= 0 {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		inner.ServeHTTP(w, r)
	})
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cl := apiclient.NewClient(sock)
	ctx := context.Background()
	if err := cl.Do(ctx, "POST", "/v1/orgs", map[string]string{"slug": "acme"}, nil); err == nil {
		t.Fatal("first call should have lost its answer")
	}
	drops.Store(1)
	var app struct{ Name, Org string }
	if err := cl.DoRetry(ctx, "POST", "/v1/apps", map[string]string{"name": "web", "org": "acme", "request_id": "r-app"}, &app); err != nil || app.Name != "web" {
		t.Fatalf("app: %+v %v", app, err)
	}
	drops.Store(1)
	var m struct{ ID string }
	if err := cl.DoRetry(ctx, "POST", "/v1/machines", mesh.MachineSpec{App: "web", RequestID: "r-m"}, &m); err != nil || m.ID == "" {
		t.Fatalf("machine: %+v %v", m, err)
	}
	if ms, _ := n.Machines.List("acme", "web"); len(ms) != 1 || ms[0].ID != m.ID {
		t.Fatalf("machines after a retried create: %+v, want only %s", ms, m.ID)
	}
	k, _ := wgtypes.GeneratePrivateKey()
	drops.Store(1)
	var p mesh.PeerInfo
	spec := mesh.PeerSpec{Org: "acme", Name: "laptop", PublicKey: k.PublicKey().String(), RequestID: "r-p"}
	if err := cl.DoRetry(ctx, "POST", "/v1/peers", spec, &p); err != nil || p.Address == "" {
		t.Fatalf("peer: %+v %v", p, err)
	}
	if ps, _ := n.Peers.List(ctx, "acme"); len(ps) != 1 || ps[0].Address != p.Address {
		t.Fatalf("peers after a retried create: %+v", ps)
	}
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
