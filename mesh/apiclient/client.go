// Package apiclient is the client of an agent's API (its unix socket, or its TLS
// listener with a token): the CLI's way to the agent. It must not import the node
// or the server (package api): the CLI links it, and every package the CLI links
// runs its init in every CLI call.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrNoAgent is returned by the client when nothing listens on the socket.
var ErrNoAgent = errors.New("no agent is running")

// Client talks to an agent's API socket.
type Client struct {
	Socket string
	// BaseURL and Token select a TCP listener instead of the socket.
	BaseURL string
	Token   string
	// Via names the program that asks (ViaCLI), in the ViaHeader of every request:
	// a header, not a body field, because agents of the release before refuse
	// unknown body fields and the CLI of an upgraded package talks to the old agent
	// until it restarts.
	Via  string
	http *http.Client
	err  error // set by Failing: every call returns it
}

// ViaHeader carries Client.Via; ViaCLI is the dogwood CLI's value (a machine it
// creates has source "cli").
const (
	ViaHeader = "Dogwood-Client"
	ViaCLI    = "cli"
)

// Failing returns a client whose every call fails with err: lets the CLI report a
// bad --agent/--token-file setup where the command would have reached the agent.
func Failing(err error) *Client { return &Client{err: err} }

// Error is an API error with its HTTP status.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// NewClient returns a client for the unix socket at path.
func NewClient(path string) *Client {
	c := &Client{Socket: path}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}, Timeout: 60 * time.Second}
	return c
}

// NewRemoteClient returns a client for an agent's TLS API at baseURL
// ("https://HOST:PORT"), authenticating with token and checking the agent's
// certificate with tlsCfg (see ClientTLS). Plain http is refused: the token would
// cross the network in clear text.
func NewRemoteClient(baseURL, token string, tlsCfg *tls.Config) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("invalid agent address %q: want https://HOST:PORT", baseURL)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("agent address %q: only https:// is supported (the API token must not travel in clear text)", baseURL)
	}
	if token == "" {
		return nil, errors.New("a remote agent needs a token: --token-file FILE or DOGWOOD_TOKEN")
	}
	c := &Client{BaseURL: "https://" + u.Host, Token: token}
	c.http = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		Proxy:               http.ProxyFromEnvironment,
	}, Timeout: 60 * time.Second}
	return c, nil
}

func (c *Client) where() string {
	if c.BaseURL != "" {
		return c.BaseURL
	}
	return c.Socket
}

// Do sends a request with an optional JSON body and decodes the JSON answer into out.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	if c.err != nil {
		return c.err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	base := c.BaseURL
	if base == "" {
		base = "http://agent"
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Via != "" {
		req.Header.Set(ViaHeader, c.Via)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.wrap(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return decodeError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// DoRetry is Do for creates that carry a client request id: when the agent cannot be
// reached or the connection fails before an answer (the agent crashed or restarts),
// it sends the same request again for up to a bound, and the agent returns the
// first attempt's result if there was one. Answers from the agent are never retried.
func (c *Client) DoRetry(ctx context.Context, method, path string, in, out any) error {
	deadline := time.Now().Add(20 * time.Second)
	wait := 200 * time.Millisecond
	for {
		err := c.Do(ctx, method, path, in, out)
		var ae *Error
		if err == nil || errors.As(err, &ae) || c.err != nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		if wait < 2*time.Second {
			wait *= 2
		}
	}
}

// wrap turns transport errors into messages that say what to do.
func (c *Client) wrap(err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w at %s (start one with `dogwood agent`, or point --agent / DOGWOOD_AGENT at its socket)", ErrNoAgent, c.where())
	}
	var ue *url.Error
	if c.BaseURL != "" && errors.As(err, &ue) {
		return fmt.Errorf("agent %s: %w", c.BaseURL, ue.Err)
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("permission denied on %s (the API socket is mode 0600: run as the agent's user)", c.Socket)
	}
	return err
}

// decodeError turns an error answer into *Error.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("agent answered %s", resp.Status)
	}
	return &Error{Status: resp.StatusCode, Message: e.Error}
}

// Backup streams the agent's data file (GET /v1/backup) into w.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return c.Download(ctx, "/v1/backup", w)
}

// Download streams the body of GET path into w, with no overall time limit (a
// large file over a slow link takes what it takes).
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (int64, error) {
	if c.err != nil {
		return 0, c.err
	}
	base := c.BaseURL
	if base == "" {
		base = "http://agent"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	// No overall client timeout: a large file over a slow link takes what it takes.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return 0, c.wrap(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, decodeError(resp)
	}
	return io.Copy(w, resp.Body)
}
