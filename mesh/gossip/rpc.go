package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// RemoteError is an error a remote handler returned; Code carries an HTTP-like status
// so the API can pass "not found" or "conflict" through unchanged.
type RemoteError struct {
	Host    string
	Code    int
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Coded lets handlers choose the status code a caller sees.
type Coded interface{ StatusCode() int }

// Handle registers an RPC handler. Register before other hosts may call.
func (g *Gossip) Handle(op string, h Handler) {
	g.mu.Lock()
	g.handlers[op] = h
	g.mu.Unlock()
}

// Call sends a request to one host and decodes its response into resp (may be nil).
func (g *Gossip) Call(ctx context.Context, host, op string, req, resp any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.RPCTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	id := g.nextID.Add(1)
	ch := make(chan rpcResponse, 1)
	g.mu.Lock()
	g.pending[id] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pending, id)
		g.mu.Unlock()
	}()
	if err := g.versions.CallError(host); err != nil {
		return err
	}
	n := g.node(host)
	if n == nil {
		return fmt.Errorf("host %q is not reachable (not a cluster member)", host)
	}
	msg, err := encode(msgRPCReq, rpcRequest{ID: id, origin: g.origin(), Op: op, Body: body})
	if err != nil {
		return err
	}
	// SendReliable dials TCP with memberlist's own timeout (10 s), deaf to ctx: a
	// host behind a one-way broken link would hold the call that long whatever
	// the caller allowed. The send finishes (or fails) on its own.
	sent := make(chan error, 1)
	go func() { sent <- g.ml.SendReliable(n, msg) }()
	select {
	case err := <-sent:
		if err != nil {
			return fmt.Errorf("host %q: %w", host, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("host %q did not take %s: %w", host, op, ctx.Err())
	}
	g.metrics.sent.WithLabelValues(msgRPCReq.String()).Inc()
	select {
	case <-ctx.Done():
		return fmt.Errorf("host %q did not answer %s%s: %w", host, op, g.versions.Describe(host), ctx.Err())
	case r := <-ch:
		if r.Error != "" {
			return &RemoteError{Host: host, Code: r.Code, Message: r.Error}
		}
		if resp != nil && len(r.Body) > 0 {
			return json.Unmarshal(r.Body, resp)
		}
		return nil
	}
}

func (g *Gossip) serveRPC(m rpcRequest) {
	defer g.wg.Done()
	g.mu.Lock()
	h := g.handlers[m.Op]
	g.mu.Unlock()
	var resp rpcResponse
	resp.ID = m.ID
	if h == nil {
		resp.Error, resp.Code = fmt.Sprintf("unknown operation %q", m.Op), 400
	} else {
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RPCTimeout)
		out, err := h(ctx, m.From, m.Body)
		cancel()
		if err != nil {
			resp.Error, resp.Code = err.Error(), 500
			var c Coded
			if errors.As(err, &c) {
				resp.Code = c.StatusCode()
			}
		} else if out != nil {
			b, err := json.Marshal(out)
			if err != nil {
				resp.Error, resp.Code = err.Error(), 500
			}
			resp.Body = b
		}
	}
	n := g.node(m.From)
	if n == nil {
		return
	}
	msg, err := encode(msgRPCResp, resp)
	if err == nil {
		if err := g.ml.SendReliable(n, msg); err == nil {
			g.metrics.sent.WithLabelValues(msgRPCResp.String()).Inc()
		}
	}
}
