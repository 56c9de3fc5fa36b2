//go:build agent

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
)

// The agent's half of `dogwood keyring`: the local agent fans one operation out to
// every live host over gossip RPC; each host changes its memberlist keyring and
// rewrites its key file, so a restart keeps the result.

const opKeyring = "keyring"

// keyring applies operations to this host's gossip keys and key file.
type keyring struct {
	node    *mesh.Node
	keyFile string
	log     *slog.Logger

	mu  sync.Mutex // orders changes: the keyring, then gen
	gen uint64     // changes made so far

	// fileMu serializes key file writes (nothing else waits on it); written is the
	// gen the file holds, so a slower write of an older list never lands last.
	fileMu  sync.Mutex
	written uint64
}

func (k *keyring) register() {
	k.node.Gossip().Handle(opKeyring, func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		var req keyringRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		return k.local(req), nil
	})
}

// local runs req on this host. Errors are part of the answer: the caller reports
// them per host.
func (k *keyring) local(req keyringRequest) keyringHost {
	out := keyringHost{Host: k.node.Name()}
	g := k.node.Gossip()
	var key []byte
	if req.Op != "list" {
		var err error
		if key, err = gossip.ParseKey(req.Key); err != nil {
			out.Error = err.Error()
			return out
		}
	}
	k.mu.Lock()
	var err error
	switch req.Op {
	case "list":
	case "install":
		err = g.InstallKey(key)
	case "use":
		err = g.UseKey(key)
	case "remove":
		err = g.RemoveKey(key)
	default:
		err = fmt.Errorf("unknown keyring operation %q", req.Op)
	}
	keys, kerr := g.Keys()
	if err == nil {
		err = kerr
	}
	changed := err == nil && req.Op != "list"
	if changed {
		k.gen++
	}
	gen := k.gen
	k.mu.Unlock()
	if changed {
		if err = k.persist(gen, keys); err == nil {
			k.log.Info("gossip keyring changed", "op", req.Op, "keys", len(keys))
		}
	}
	for i, kk := range keys {
		s := base64.StdEncoding.EncodeToString(kk)
		if i == 0 {
			out.Primary = s
		}
		out.Keys = append(out.Keys, s)
	}
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.OK = true
	return out
}

// persist writes keys (the keyring after change gen) unless a later change is
// already in the file.
func (k *keyring) persist(gen uint64, keys [][]byte) error {
	k.fileMu.Lock()
	defer k.fileMu.Unlock()
	if gen <= k.written {
		return nil
	}
	if err := k.writeFile(keys); err != nil {
		return err
	}
	k.written = gen
	return nil
}

// writeFile replaces the key file atomically (mode 0600), so a crash leaves the old
// or the new file, never half of one.
func (k *keyring) writeFile(keys [][]byte) error {
	if k.keyFile == "" {
		return errors.New("no --gossip-key-file to rewrite")
	}
	tmp, err := os.CreateTemp(filepath.Dir(k.keyFile), ".gossip-key-*")
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(gossip.FormatKeyFile(keys))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), k.keyFile); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	return nil
}

// fanout runs req on every live host (this one included) and returns the answers
// sorted by host. remove is refused everywhere, before any host changes, if the
// key is still the primary key of some host.
func (k *keyring) fanout(ctx context.Context, req keyringRequest) ([]keyringHost, error) {
	if req.Op != "list" {
		if _, err := gossip.ParseKey(req.Key); err != nil {
			return nil, usagef("%v", err)
		}
	}
	if req.Op == "remove" {
		hosts, err := k.fanout(ctx, keyringRequest{Op: "list"})
		if err != nil {
			return nil, err
		}
		var using []string
		for _, h := range hosts {
			if h.Primary == req.Key {
				using = append(using, h.Host)
			}
		}
		if len(using) > 0 {
			return hosts, &keyInUseError{hosts: using}
		}
	}
	var names []string
	for _, m := range k.node.Members.List() {
		if catalog.Live(m.Status) {
			names = append(names, m.Name)
		}
	}
	out := make([]keyringHost, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if name == k.node.Name() {
				out[i] = k.local(req)
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var resp keyringHost
			if err := k.node.Gossip().Call(cctx, name, opKeyring, req, &resp); err != nil {
				out[i] = keyringHost{Host: name, Error: err.Error()}
				return
			}
			out[i] = resp
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

type keyInUseError struct{ hosts []string }

func (e *keyInUseError) Error() string {
	return fmt.Sprintf("refused: the key is in use (it encrypts gossip) on %v; `dogwood keyring use` another key first", e.hosts)
}

// serveHTTP is POST /v1/keyring on the unix socket.
func (k *keyring) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var req keyringRequest
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad keyring request: "+err.Error())
		return
	}
	switch req.Op {
	case "list", "install", "use", "remove":
	default:
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("unknown keyring operation %q", req.Op))
		return
	}
	hosts, err := k.fanout(r.Context(), req)
	var ue *usageError
	var inUse *keyInUseError
	switch {
	case errors.As(err, &ue):
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	case errors.As(err, &inUse):
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(hosts)
}

// writeJSONError answers in the API's error shape ({"error": "..."}), which the
// CLI's client turns into its error.
func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// localRoutes serves routes only the unix socket offers (root on this host:
// keyring and doctor) in front of the API's own handler. The TLS listener does not
// get them.
func localRoutes(apiHandler http.Handler, routes map[string]http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", apiHandler)
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	return mux
}
