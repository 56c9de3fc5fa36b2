package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/apiclient"
	"github.com/dogwood/dogwood/mesh/store"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// startNode runs a one-host cluster: a gateway with WireGuard keys but no data
// plane, enough for every route of the API.
func startNode(t *testing.T) (*mesh.Node, string) {
	t.Helper()
	dir := t.TempDir()
	n, err := mesh.Start(mesh.Config{
		Name: "h1", DataDir: dir, Region: "ord", GossipAddr: "127.0.0.1:0", GossipKey: testKey,
		WireGuard: true, WGPort: 51820, Gateway: true, PublicEndpoint: "198.18.0.1:51820",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, dir
}

type call struct {
	method, path, body string
	auth               []string // Authorization header values (nil: none)
}

func do(t *testing.T, h http.Handler, c call) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	for _, a := range c.auth {
		r.Header.Add("Authorization", a)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestStatusCodes walks every status the API documents, each caused the way a
// client would cause it, and checks that errors are JSON {"error": …}.
func TestStatusCodes(t *testing.T) {
	n, _ := startNode(t)
	s := &Server{Node: n, Version: "test", WireGuard: func() (*WireGuardStatus, error) { return nil, nil }}
	h := s.Handler()
	broken := (&Server{Node: n, WireGuard: func() (*WireGuardStatus, error) { return nil, errors.New("wgctrl: boom") }}).Handler()
	pub := func() string {
		k, _ := wgtypes.GeneratePrivateKey()
		return k.PublicKey().String()
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
		c    call
		want int
	}{
		{"health", h, call{method: "GET", path: "/v1/health"}, 200},
		{"create org", h, call{method: "POST", path: "/v1/orgs", body: `{"slug":"acme"}`}, 201},
		{"org exists", h, call{method: "POST", path: "/v1/orgs", body: `{"slug":"acme"}`}, 409},
		{"invalid slug", h, call{method: "POST", path: "/v1/orgs", body: `{"slug":"Not Valid"}`}, 400},
		{"unknown field", h, call{method: "POST", path: "/v1/orgs", body: `{"slug":"x","typo":1}`}, 400},
		{"trailing data", h, call{method: "POST", path: "/v1/orgs", body: `{"slug":"x"} {}`}, 400},
		{"not json", h, call{method: "POST", path: "/v1/orgs", body: `slug=x`}, 400},
		{"create app", h, call{method: "POST", path: "/v1/apps", body: `{"name":"web","org":"acme"}`}, 201},
		{"reserved app name", h, call{method: "POST", path: "/v1/apps", body: `{"name":"vms","org":"acme"}`}, 400},
		{"reserved app name all", h, call{method: "POST", path: "/v1/apps", body: `{"name":"all","org":"acme"}`}, 400},
		{"list apps", h, call{method: "GET", path: "/v1/apps?org=acme"}, 200},
		{"unknown org", h, call{method: "GET", path: "/v1/apps?org=nope"}, 404},
		{"unknown machine", h, call{method: "GET", path: "/v1/machines/0123456789abcd"}, 404},
		{"bad machine id", h, call{method: "GET", path: "/v1/machines/xyz"}, 400},
		{"unknown action", h, call{method: "POST", path: "/v1/machines/0123456789abcd/explode"}, 404},
		{"unknown endpoint", h, call{method: "GET", path: "/v2/everything"}, 404},
		{"peer with own gateway key", h, call{method: "POST", path: "/v1/peers",
			body: `{"org":"acme","name":"evil","public_key":"` + n.Snapshot().Hosts["h1"].PublicKey + `"}`}, 400},
		{"peer", h, call{method: "POST", path: "/v1/peers", body: `{"org":"acme","name":"laptop","public_key":"` + pub() + `"}`}, 201},
		{"peer in a region without gateway", h, call{method: "POST", path: "/v1/peers",
			body: `{"org":"acme","name":"l2","region":"ams","public_key":"` + pub() + `"}`}, 404},
		{"remove app", h, call{method: "DELETE", path: "/v1/apps/web"}, 204},
		{"dig without DNS", h, call{method: "POST", path: "/v1/dig", body: `{"org":"acme","name":"web.internal"}`}, 503},
		{"data plane failure", broken, call{method: "GET", path: "/v1/status"}, 500},
	} {
		res, body := do(t, tc.h, tc.c)
		if res.StatusCode != tc.want {
			t.Errorf("%s: %s %s → %d %s, want %d", tc.name, tc.c.method, tc.c.path, res.StatusCode, body, tc.want)
			continue
		}
		if tc.want >= 400 {
			var e struct{ Error string }
			if json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Errorf("%s: error body %q is not {\"error\": …}", tc.name, body)
			}
		}
	}

	// A refused peer allocated nothing.
	res, body := do(t, h, call{method: "GET", path: "/v1/peers?org=acme"})
	if res.StatusCode != 200 || strings.Contains(string(body), "evil") {
		t.Errorf("peers after the refused one: %d %s", res.StatusCode, body)
	}
	// Reusing another peer's key is a conflict.
	var peers []struct {
		PublicKey string `json:"public_key"`
	}
	json.Unmarshal(body, &peers)
	if len(peers) != 1 {
		t.Fatalf("peers: %s", body)
	}
	if res, body := do(t, h, call{method: "POST", path: "/v1/peers", body: `{"org":"acme","name":"twin","public_key":"` + peers[0].PublicKey + `"}`}); res.StatusCode != 409 {
		t.Errorf("peer reusing a peer's key: %d %s, want 409", res.StatusCode, body)
	}
}

// TestBearer covers RFC 9110 credentials parsing: the scheme is case-insensitive,
// separated by one or more spaces; a bare token, another scheme, an empty token,
// extra words or two headers are refused with a Bearer challenge.
func TestBearer(t *testing.T) {
	n, _ := startNode(t)
	h := (&Server{Node: n, Token: "s3cr3t-T0ken"}).Handler()
	for _, tc := range []struct {
		auth []string
		ok   bool
	}{
		{[]string{"Bearer s3cr3t-T0ken"}, true},
		{[]string{"bearer s3cr3t-T0ken"}, true},
		{[]string{"BEARER   s3cr3t-T0ken"}, true},
		{nil, false},
		{[]string{"s3cr3t-T0ken"}, false},
		{[]string{"Bearer"}, false},
		{[]string{"Bearer "}, false},
		{[]string{"Bearer wrong"}, false},
		{[]string{"Bearer s3cr3t-T0ken extra"}, false},
		{[]string{"Basic s3cr3t-T0ken"}, false},
		{[]string{"Bearers3cr3t-T0ken"}, false},
		{[]string{"Bearer s3cr3t-T0ken", "Bearer s3cr3t-T0ken"}, false},
	} {
		for _, path := range []string{"/v1/health", "/v1/backup"} {
			res, body := do(t, h, call{method: "GET", path: path, auth: tc.auth})
			if tc.ok && res.StatusCode != 200 {
				t.Errorf("%q on %s: %d %s, want 200", tc.auth, path, res.StatusCode, body)
			}
			if !tc.ok {
				if res.StatusCode != 401 {
					t.Errorf("%q on %s: %d, want 401", tc.auth, path, res.StatusCode)
				} else if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("%q: 401 without a Bearer challenge: %q", tc.auth, res.Header.Get("WWW-Authenticate"))
				}
			}
		}
	}
	// The unix socket server has no token and needs none.
	if res, _ := do(t, (&Server{Node: n}).Handler(), call{method: "GET", path: "/v1/health"}); res.StatusCode != 200 {
		t.Errorf("no-token server: %d", res.StatusCode)
	}
}

// TestBackup reads /v1/backup and opens it as a data file: same identity as the
// running host, every record there.
func TestBackup(t *testing.T) {
	n, _ := startNode(t)
	h := (&Server{Node: n}).Handler()
	do(t, h, call{method: "POST", path: "/v1/orgs", body: `{"slug":"acme"}`})
	res, body := do(t, h, call{method: "GET", path: "/v1/backup"})
	if res.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("backup: %d (%d bytes)", res.StatusCode, len(body))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dogwood.db"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatalf("backup does not open: %v", err)
	}
	defer st.Close()
	id, ok, err := st.Identity()
	if err != nil || !ok || id.HostID != n.HostID() || id.Name != "h1" {
		t.Errorf("backup identity %+v ok=%v err=%v, want h1/%08x", id, ok, err, n.HostID())
	}
	rs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rs {
		if r.Org != nil && r.Org.Slug == "acme" {
			found = true
		}
	}
	if !found {
		t.Errorf("org acme missing from the backup (%d records)", len(rs))
	}
}

// TestTLSAPI serves the API as the agent does (bounded listener, TLS with a
// certificate generated in the data dir) and talks to it with the remote client:
// the right pin works, a wrong pin, no pin, plain http and a missing token fail
// before any request is made or with 401.
func TestTLSAPI(t *testing.T) {
	n, dir := startNode(t)
	cert, fp, err := LoadOrCreateCert(dir, "", "", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	// Same certificate on the next start.
	if _, fp2, err := LoadOrCreateCert(dir, "", "", nil); err != nil || fp2 != fp {
		t.Fatalf("second load: %s %v, want %s", fp2, err, fp)
	}
	ln, err := Listen("127.0.0.1:0", TCPAPILimits(), &cert)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer((&Server{Node: n, Token: "tok", APIFingerprint: fp}).Handler(), TCPAPILimits(), nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String()
	ctx := context.Background()

	pinned := func(pin string) *tls.Config {
		c, err := apiclient.ClientTLS(pin, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cl, err := apiclient.NewRemoteClient(url, "tok", pinned(fp))
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := cl.Do(ctx, "GET", "/v1/status", nil, &st); err != nil || st.APIFingerprint != fp {
		t.Fatalf("pinned client: %v (fingerprint %q)", err, st.APIFingerprint)
	}
	// The colon form openssl prints works too.
	colons := strings.ToUpper(strings.TrimPrefix(fp, "sha256:"))
	var b strings.Builder
	for i := 0; i < len(colons); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(colons[i : i+2])
	}
	if cl, _ := apiclient.NewRemoteClient(url, "tok", pinned(b.String())); cl.Do(ctx, "GET", "/v1/health", nil, nil) != nil {
		t.Errorf("colon-separated fingerprint refused")
	}

	wrong := "sha256:" + strings.Repeat("ab", 32)
	cl, _ = apiclient.NewRemoteClient(url, "tok", pinned(wrong))
	if err := cl.Do(ctx, "GET", "/v1/health", nil, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("wrong pin: %v", err)
	}
	cl, _ = apiclient.NewRemoteClient(url, "tok", pinned(""))
	if err := cl.Do(ctx, "GET", "/v1/health", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("no pin, self-signed: %v", err)
	}
	cl, _ = apiclient.NewRemoteClient(url, "nope", pinned(fp))
	var ae *apiclient.Error
	if err := cl.Do(ctx, "GET", "/v1/health", nil, nil); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := apiclient.NewRemoteClient("http://"+ln.Addr().String(), "tok", pinned(fp)); err == nil {
		t.Error("plain http accepted")
	}
	if _, err := apiclient.NewRemoteClient(url, "", pinned(fp)); err == nil {
		t.Error("no token accepted")
	}
	if _, err := apiclient.ClientTLS("sha256:1234", ""); err == nil {
		t.Error("short fingerprint accepted")
	}
	// A plain-HTTP request to the TLS port gets nothing useful.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n\r\n")
	reply, _ := io.ReadAll(c)
	c.Close()
	if bytes.Contains(reply, []byte(`"ok"`)) {
		t.Errorf("plain HTTP answered on the TLS port: %q", reply)
	}
}

// TestIdleConnectionsAreBounded holds more idle connections than the listener's
// cap and checks the excess is closed by the server at once, while the held ones
// are closed after the idle/read-header timeouts.
func TestIdleConnectionsAreBounded(t *testing.T) {
	n, _ := startNode(t)
	lim := Limits{MaxConns: 4, PerSource: 3, ReadHeader: 3 * time.Second, Idle: 3 * time.Second,
		Read: time.Second, Write: time.Second}
	ln, err := Listen("127.0.0.1:0", lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer((&Server{Node: n}).Handler(), lim, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var conns []net.Conn
	refused := 0
	closedAt := func(c net.Conn, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			refused++ // reset before the handshake completed
			continue
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		if closedAt(c, 400*time.Millisecond) {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d of 5 connections from one source closed at once, want 2 (per-source cap 3)", refused)
	}
	// The held ones do not stay: the header timeout closes them.
	for i, c := range conns {
		if !closedAt(c, 5*time.Second) {
			t.Errorf("connection %d still open after the read-header timeout", i)
		}
		c.Close()
	}
}

// TestTLSAPIWithCA: an operator's own certificate (--api-tls-cert/--api-tls-key),
// checked by the CLI against the CA file that signed it (--agent-ca).
func TestTLSAPIWithCA(t *testing.T) {
	n, _ := startNode(t)
	dir := t.TempDir()
	mkCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		path := filepath.Join(dir, name+".pem")
		os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		return c, key, path
	}
	ca, caKey, caFile := mkCA("ca")
	_, _, otherCA := mkCA("other")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "srv.pem"), filepath.Join(dir, "srv.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)

	if _, _, err := LoadOrCreateCert(dir, certFile, "", nil); err == nil {
		t.Error("a certificate without its key was accepted")
	}
	cert, fp, err := LoadOrCreateCert(t.TempDir(), certFile, keyFile, nil)
	if err != nil || fp != apiclient.Fingerprint(der) {
		t.Fatalf("load: %v %s", err, fp)
	}
	ln, err := Listen("127.0.0.1:0", TCPAPILimits(), &cert)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer((&Server{Node: n, Token: "tok"}).Handler(), TCPAPILimits(), nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, tc := range []struct {
		ca string
		ok bool
	}{{caFile, true}, {otherCA, false}} {
		cfg, err := apiclient.ClientTLS("", tc.ca)
		if err != nil {
			t.Fatal(err)
		}
		cl, _ := apiclient.NewRemoteClient("https://"+ln.Addr().String(), "tok", cfg)
		err = cl.Do(context.Background(), "GET", "/v1/health", nil, nil)
		if (err == nil) != tc.ok {
			t.Errorf("CA %s: %v, want ok=%v", filepath.Base(tc.ca), err, tc.ok)
		}
	}
}

// TestMachineSourceFromVia: the CLI says it is the CLI in a header, never in the
// body (an agent of the release before refuses unknown body fields); other clients'
// machines say api.
func TestMachineSourceFromVia(t *testing.T) {
	n, _ := startNode(t)
	h := (&Server{Node: n, Version: "test"}).Handler()
	for _, c := range []call{
		{method: "POST", path: "/v1/orgs", body: `{"slug":"acme"}`},
		{method: "POST", path: "/v1/apps", body: `{"name":"web","org":"acme"}`},
	} {
		if res, b := do(t, h, c); res.StatusCode != 201 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, res.StatusCode, b)
		}
	}
	for _, tc := range []struct{ via, want string }{{apiclient.ViaCLI, "cli"}, {"", "api"}} {
		r := httptest.NewRequest("POST", "/v1/machines", strings.NewReader(`{"app":"web","org":"acme","stopped":true}`))
		if tc.via != "" {
			r.Header.Set(apiclient.ViaHeader, tc.via)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var m struct{ Source string }
		if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &m) != nil || m.Source != tc.want {
			t.Errorf("via %q: %d %s, want source %q", tc.via, w.Code, w.Body, tc.want)
		}
	}
}
