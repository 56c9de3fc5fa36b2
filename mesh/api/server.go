// Package api owns the agent's local HTTP+JSON API: the server the agent exposes on
// its unix socket (and, with a bearer token, optionally on TCP) and the client the
// CLI uses. Every error is JSON {"error": "..."} with a status code that says whose
// fault it was: 400 invalid input, 404 unknown object, 409 conflict, 503 a host or
// gateway is unavailable, 500 anything else.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/apiclient"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/schema"
)

// The status and dig shapes are schema's (the CLI links that, not this package).
type (
	WireGuardStatus = schema.WireGuardStatus
	WireGuardPeer   = schema.WireGuardPeer
	Status          = schema.Status
	DigRequest      = schema.DigRequest
	DigResponse     = schema.DigResponse
)

// Server serves the API for one node.
type Server struct {
	Node    *mesh.Node
	Version string
	// WireGuard returns the data plane status; nil when WireGuard is off.
	WireGuard func() (*WireGuardStatus, error)
	// Resolve answers a DNS question in one network; nil when DNS is off.
	Resolve func(ctx context.Context, network uint32, name string, qtype uint16) (*dns.Msg, error)
	Logger  *slog.Logger
	// Token, when set, is required as a bearer token (for the TCP listener).
	Token string
	// APIFingerprint is the TLS API certificate's fingerprint, shown by status so an
	// operator can hand it to remote CLIs; empty without a TCP listener.
	APIFingerprint string
	// LiveChecks, when set, returns the latest results of the checks this host runs
	// for a machine (nil when it runs none): machines of this host show them instead
	// of the statuses of their last transition.
	LiveChecks func(id string) []catalog.Check
}

// machineView is a machine as the API shows it: health spelled out (a machine without
// checks passes) and, on its own host, its checks' latest results.
func (s *Server) machineView(m *catalog.Machine) catalog.Machine {
	out := *m
	if out.MachineAttrs == nil {
		return out
	}
	a := *out.MachineAttrs // shared with the catalog: change a copy
	a.Health = a.HealthOrPassing()
	if s.LiveChecks != nil && len(a.Checks) > 0 {
		if live := s.LiveChecks(m.ID); slices.EqualFunc(live, a.Checks, func(x, y catalog.Check) bool { return x.Config() == y.Config() }) {
			a.Checks = live
		}
	}
	out.MachineAttrs = &a
	return out
}

func (s *Server) viewMachine(m *catalog.Machine, err error) (*catalog.Machine, error) {
	if m == nil {
		return nil, err
	}
	v := s.machineView(m)
	return &v, err
}

// appView spells out an app's defaults.
func appView(a catalog.App) catalog.App {
	if a.WhenNoneHealthy == "" {
		a.WhenNoneHealthy = catalog.WhenNoneAll
	}
	return a
}

func viewApp(a *catalog.App, err error) (*catalog.App, error) {
	if a == nil {
		return nil, err
	}
	v := appView(*a)
	return &v, err
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, f) })
	}
	h("GET /v1/health", func(*http.Request) (any, error) { return map[string]string{"status": "ok"}, nil })
	h("GET /v1/status", s.status)
	h("GET /v1/members", func(*http.Request) (any, error) { return s.Node.Members.List(), nil })
	h("DELETE /v1/members/{name}", func(r *http.Request) (any, error) {
		return nil, s.Node.Members.Remove(r.Context(), r.PathValue("name"))
	})
	h("GET /v1/orgs", func(*http.Request) (any, error) { return s.Node.Orgs.List(), nil })
	h("POST /v1/orgs", func(r *http.Request) (any, error) {
		var req struct {
			Slug string `json:"slug"`
		}
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.Node.Orgs.Create(r.Context(), req.Slug)
	})
	h("PATCH /v1/orgs/{slug}/limits", func(r *http.Request) (any, error) {
		var req mesh.OrgLimitsUpdate
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.Node.Orgs.SetLimits(r.Context(), r.PathValue("slug"), req)
	})
	h("DELETE /v1/orgs/{slug}", func(r *http.Request) (any, error) {
		return nil, s.Node.Orgs.Remove(r.Context(), r.PathValue("slug"))
	})
	h("GET /v1/networks", func(r *http.Request) (any, error) { return s.Node.Networks.List(r.URL.Query().Get("org")) })
	h("POST /v1/networks", func(r *http.Request) (any, error) {
		var req struct {
			Org  string `json:"org"`
			Name string `json:"name"`
		}
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.Node.Networks.Create(r.Context(), req.Org, req.Name)
	})
	h("GET /v1/apps", func(r *http.Request) (any, error) {
		as, err := s.Node.Apps.List(r.URL.Query().Get("org"))
		for i := range as {
			as[i] = appView(as[i])
		}
		return as, err
	})
	h("POST /v1/apps", func(r *http.Request) (any, error) {
		var req struct {
			Name      string `json:"name"`
			Org       string `json:"org"`
			Network   string `json:"network"`
			RequestID string `json:"request_id"`
			mesh.AppSettings
		}
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return viewApp(s.Node.Apps.Create(r.Context(), mesh.AppSpec{Name: req.Name, Org: req.Org, Network: req.Network, RequestID: req.RequestID, Settings: req.AppSettings}))
	})
	h("PATCH /v1/apps/{name}", func(r *http.Request) (any, error) {
		var req mesh.AppSettings
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return viewApp(s.Node.Apps.Update(r.Context(), r.URL.Query().Get("org"), r.PathValue("name"), req))
	})
	h("DELETE /v1/apps/{name}", func(r *http.Request) (any, error) {
		return nil, s.Node.Apps.Remove(r.Context(), r.URL.Query().Get("org"), r.PathValue("name"))
	})
	h("GET /v1/machines", func(r *http.Request) (any, error) {
		ms, err := s.Node.Machines.List(r.URL.Query().Get("org"), r.URL.Query().Get("app"))
		for i := range ms {
			ms[i] = s.machineView(&ms[i])
		}
		return ms, err
	})
	h("POST /v1/machines", func(r *http.Request) (any, error) {
		var spec mesh.MachineSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		if spec.Source == "" && r.Header.Get(apiclient.ViaHeader) == apiclient.ViaCLI {
			spec.Source = catalog.SourceCLI
		}
		return s.viewMachine(s.Node.Machines.Create(r.Context(), spec))
	})
	h("GET /v1/machines/{id}", func(r *http.Request) (any, error) { return s.viewMachine(s.Node.Machines.Get(r.PathValue("id"))) })
	h("POST /v1/machines/{id}/{action}", func(r *http.Request) (any, error) {
		a := r.PathValue("action")
		if a != "start" && a != "stop" {
			return nil, &mesh.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("unknown machine action %q", a)}
		}
		return s.viewMachine(s.Node.Machines.Action(r.Context(), r.PathValue("id"), a))
	})
	h("DELETE /v1/machines/{id}", func(r *http.Request) (any, error) {
		return s.viewMachine(s.Node.Machines.Action(r.Context(), r.PathValue("id"), "destroy"))
	})
	h("GET /v1/peers", func(r *http.Request) (any, error) { return s.Node.Peers.List(r.Context(), r.URL.Query().Get("org")) })
	h("POST /v1/peers", func(r *http.Request) (any, error) {
		var spec mesh.PeerSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.Node.Peers.Create(r.Context(), spec)
	})
	h("GET /v1/peers/{org}/{name}", func(r *http.Request) (any, error) {
		return s.Node.Peers.Status(r.Context(), r.PathValue("org"), r.PathValue("name"))
	})
	h("DELETE /v1/peers/{org}/{name}", func(r *http.Request) (any, error) {
		return nil, s.Node.Peers.Remove(r.Context(), r.PathValue("org"), r.PathValue("name"))
	})
	s.inviteRoutes(h)
	s.dnsRoutes(h)
	h("POST /v1/dig", s.dig)
	h("GET /v1/catalog", func(*http.Request) (any, error) { return s.Node.Catalog().All(), nil })
	mux.HandleFunc("GET /v1/backup", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="dogwood.db"`)
		if _, err := s.Node.Backup(w); err != nil && s.Logger != nil {
			s.Logger.Error("backup", "err", err)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, f func(*http.Request) (any, error)) {
	if !s.authorized(w, r) {
		return
	}
	out, err := f(r)
	if err != nil {
		code := mesh.StatusCode(err)
		if code >= 500 && s.Logger != nil {
			s.Logger.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, code, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method == http.MethodPost && r.URL.Path != "/v1/dig" && !strings.Contains(r.URL.Path, "/machines/") {
		w.WriteHeader(http.StatusCreated)
	}
	json.NewEncoder(w).Encode(out)
}

// authorized checks the bearer token (when one is set) and answers 401 if it is wrong.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.Token == "" {
		return true
	}
	got, ok := bearerToken(r.Header.Values("Authorization"))
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
		// RFC 6750 §3: say which scheme, and whether a token was offered at all.
		challenge := `Bearer realm="dogwood"`
		if ok {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer TOKEN)")
		return false
	}
	return true
}

// bearerToken extracts the token of an "Authorization: Bearer TOKEN" header as RFC
// 9110 §11.4 reads credentials: the scheme is case-insensitive and separated from
// the token68 by one or more spaces. Anything else (no scheme, another scheme,
// several Authorization headers, a token with spaces) is not a bearer token.
func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, rest, found := strings.Cut(values[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok := strings.TrimRight(strings.TrimLeft(rest, " "), " \t")
	if tok == "" || !isToken68(tok) {
		return "", false
	}
	return tok, true
}

// isToken68 is RFC 9110's token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// decode reads a JSON body strictly: unknown fields and trailing data are errors, so
// a typo in a script fails loudly instead of being ignored.
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &mesh.Error{Code: http.StatusBadRequest, Msg: "invalid request body: " + err.Error()}
	}
	if d.More() {
		return &mesh.Error{Code: http.StatusBadRequest, Msg: "invalid request body: trailing data"}
	}
	return nil
}

func (s *Server) status(*http.Request) (any, error) {
	n := s.Node
	live, tomb := n.Catalog().Len()
	counts := map[string]int{"tombstones": tomb}
	for _, k := range catalog.Kinds() {
		counts[k.String()+"s"] = live[k]
	}
	members := map[string]int{}
	for _, m := range n.Members.List() {
		members[m.Status]++
	}
	st := &Status{
		Name: n.Name(), HostID: n.HostID(), HostIDHex: fmt.Sprintf("%08x", n.HostID()), Region: n.Region(),
		Version: s.Version, Catalog: counts, Members: members, APIFingerprint: s.APIFingerprint,
	}
	if h := n.Snapshot().Hosts[n.Name()]; h != nil {
		st.PublicKey, st.Gateway = h.PublicKey, h.Gateway
	}
	if s.WireGuard != nil {
		wg, err := s.WireGuard()
		if err != nil {
			return nil, err
		}
		st.WireGuard = wg
	}
	return st, nil
}

func (s *Server) dig(r *http.Request) (any, error) {
	var req DigRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if s.Resolve == nil {
		return nil, &mesh.Error{Code: http.StatusServiceUnavailable, Msg: "DNS is not running on this agent"}
	}
	if req.Network == "" {
		req.Network = mesh.DefaultNetwork
	}
	if err := mesh.ValidOrg(req.Org); err != nil {
		return nil, err
	}
	nets, err := s.Node.Networks.List(req.Org)
	if err != nil {
		return nil, err
	}
	var netID uint32
	for _, nw := range nets {
		if nw.Name == req.Network {
			netID = nw.ID
		}
	}
	if netID == 0 {
		return nil, &mesh.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("network %q not found in org %q", req.Network, req.Org)}
	}
	qtype := dns.TypeAAAA
	if req.Type != "" {
		t, ok := dns.StringToType[strings.ToUpper(req.Type)]
		if !ok {
			return nil, &mesh.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("unknown DNS type %q", req.Type)}
		}
		qtype = t
	}
	if _, ok := dns.IsDomainName(req.Name); !ok || req.Name == "" {
		return nil, &mesh.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid DNS name %q", req.Name)}
	}
	resp, err := s.Resolve(r.Context(), netID, dns.Fqdn(req.Name), qtype)
	if err != nil {
		return nil, err
	}
	b, err := resp.Pack()
	if err != nil {
		return nil, err
	}
	return DigResponse{Msg: base64.StdEncoding.EncodeToString(b)}, nil
}

// ListenUnix listens on a unix socket with mode 0600, replacing a stale socket file
// but refusing to steal one a running agent still answers on.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(dirOf(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("API socket %s is in use by another agent", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i > 0 {
		return p[:i]
	}
	return "."
}
