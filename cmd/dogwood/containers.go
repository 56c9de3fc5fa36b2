//go:build agent

package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/containers"
)

// reapGrace is how long a container's namespace must be gone before its machine is
// destroyed: long enough for the runtime's own DEL, short enough not to leak.
const reapGrace = 10 * time.Second

// startContainers serves the CNI plugin's endpoints on the unix socket (root's
// only: the server needs containers.ConnContext) and reaps
// container machines whose namespace died. With --wireguard off nothing attaches
// namespaces, so the endpoints answer 503 and nothing is reaped.
func startContainers(ctx context.Context, node *mesh.Node, dp *dataPlane, log *slog.Logger) (map[string]http.HandlerFunc, func()) {
	svc := &containers.Service{Machines: node.Machines, Catalog: node.Catalog(), Log: log,
		Installed: func(ctx context.Context, id string) error {
			return dp.Installed(ctx, catalog.ID{Kind: catalog.KindMachine, Key: id})
		}}
	routes := svc.Routes()
	for pattern, h := range routes {
		routes[pattern] = containers.RootOnly(h)
	}
	if dp.dp == nil {
		for pattern := range routes {
			routes[pattern] = func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"error":"this agent runs with --wireguard off and attaches no containers"}` + "\n"))
			}
		}
		return routes, func() {}
	}
	r := &containers.Reaper{
		Machines: func() []*catalog.Machine { return node.Snapshot().LocalMachines },
		Gone:     containers.NamespaceGone,
		Destroy: func(ctx context.Context, id string) error {
			_, err := node.Machines.Action(ctx, id, "destroy")
			return err
		},
		Grace: reapGrace, Log: log,
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx, 2*time.Second)
	}()
	var once sync.Once
	return routes, func() { once.Do(func() { cancel(); <-done }) }
}
