package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// RemoteError is an error a remote handler returned; Code carries an HTTP-like status
// so the API can pass "not found" or "conflict" through unchanged.
type RemoteError struct {
	Host    string
	Code    int
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// coded lets handlers choose the status code a caller sees.
type coded interface{ StatusCode() int }

// rpcs is request/response calls between agents over gossip's messages: the
// handlers this host serves and the calls it waits on. Responses are matched by
// id; ids start at a random value per process (replay.go).
type rpcs struct {
	g *Gossip

	mu       sync.Mutex
	handlers map[string]Handler
	pending  map[uint64]chan rpcResponse
	nextID   atomic.Uint64
}

func newRPCs(g *Gossip) *rpcs {
	r := &rpcs{g: g, handlers: map[string]Handler{}, pending: map[uint64]chan rpcResponse{}}
	r.nextID.Store(randomID()) // replay.go: no stale response matches a new call
	return r
}

// deliver hands a response to the call waiting on it, if any still is.
func (r *rpcs) deliver(m rpcResponse) {
	r.mu.Lock()
	ch := r.pending[m.ID]
	delete(r.pending, m.ID)
	r.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

// Handle registers (or replaces) the handler of op; safe at any time. Other hosts
// may call as soon as New returns: a call of an op not registered yet is answered
// "unknown operation" (400), which the caller sees as a failed call, as it would a
// host that is still starting.
func (r *rpcs) Handle(op string, h Handler) {
	r.mu.Lock()
	r.handlers[op] = h
	r.mu.Unlock()
}

// Call sends a request to one host and decodes its response into resp (may be nil).
func (r *rpcs) Call(ctx context.Context, host, op string, req, resp any) error {
	g := r.g
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.RPCTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	id := r.nextID.Add(1)
	ch := make(chan rpcResponse, 1)
	r.mu.Lock()
	r.pending[id] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
	}()
	if err := g.versions.CallError(host); err != nil {
		return err
	}
	n := g.members.node(host)
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
	g.metrics.sentBy.of(msgRPCReq).Inc()
	select {
	case <-ctx.Done():
		return fmt.Errorf("host %q did not answer %s%s: %w", host, op, g.versions.describe(host), ctx.Err())
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

func (r *rpcs) serve(m rpcRequest) {
	g := r.g
	defer g.wg.Done()
	r.mu.Lock()
	h := r.handlers[m.Op]
	r.mu.Unlock()
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
			var c coded
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
	n := g.members.node(m.From)
	if n == nil {
		return
	}
	msg, err := encode(msgRPCResp, resp)
	if err == nil {
		if err := g.ml.SendReliable(n, msg); err == nil {
			g.metrics.sentBy.of(msgRPCResp).Inc()
		}
	}
}
