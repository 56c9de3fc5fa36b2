package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// agentClient speaks HTTP to the agent's unix socket.
type agentClient struct {
	socket string
	http   *http.Client
}

func dialAgent(socket string) *agentClient {
	var d net.Dialer
	return &agentClient{socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", socket) },
	}}}
}

// errUnreachable is a failure to talk to the agent at all (as opposed to an answer).
type errUnreachable struct {
	socket string
	err    error
}

func (e *errUnreachable) Error() string {
	return fmt.Sprintf("cannot reach the dogwood agent at %s: %v", e.socket, e.err)
}

// agentError is the agent's {"error"} answer with its status.
type agentError struct {
	status int
	msg    string
}

func (e *agentError) Error() string { return e.msg }

// do sends one request; out may be nil.
func (c *agentClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &errUnreachable{socket: c.socket, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &errUnreachable{socket: c.socket, err: err}
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("agent answered %s", resp.Status)
		}
		return &agentError{status: resp.StatusCode, msg: e.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return json.Unmarshal(b, out)
}

// cniError turns a failure into CNI's error (code, msg, details).
func cniError(what string, err error) *types.Error {
	var ue *errUnreachable
	if errors.As(err, &ue) {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%s: cannot reach the dogwood agent at %s", what, ue.socket),
			fmt.Sprintf("%v; is `dogwood agent` running, and is \"agent\" in the network config its --api-socket?", ue.err))
	}
	var ae *agentError
	if errors.As(err, &ae) {
		code := types.ErrInternal
		switch ae.status {
		case http.StatusBadRequest, http.StatusNotFound:
			code = types.ErrInvalidNetworkConfig
		case http.StatusServiceUnavailable:
			code = types.ErrTryAgainLater
		}
		return types.NewError(code, what+": "+ae.msg, fmt.Sprintf("the agent answered HTTP %d", ae.status))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return types.NewError(types.ErrTryAgainLater, what+": the dogwood agent did not answer in time", err.Error())
	}
	return types.NewError(types.ErrInternal, what+": "+err.Error(), "")
}

// timeouts: ADD waits for the machine's attach; DEL must not hold a teardown long.
const (
	addTimeout = 60 * time.Second
	delTimeout = 15 * time.Second
	// restartWait is how long DEL waits for an agent that does not answer (one
	// restarting is back within it) before it fails.
	restartWait = 3 * time.Second
)
