//go:build agent

package main

import (
	"context"
	"io"
	"log/slog"
)

// newLogger builds the agent's logger: --log-format text (logfmt, for journald and
// people) or json (one object per line, for log shippers), at --log-level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler
	switch format {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, usagef("invalid --log-format %q: text or json", format)
	}
	return slog.New(&componentHandler{h: h}), nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("invalid --log-level %q: debug, info, warn or error", s)
	}
	return l, nil
}

// componentHandler keeps one "component" attribute per line, the innermost: a
// package tags its own logger (peers: wireguard, wireguard-go below it) whatever
// the caller already tagged, and a line never says component=a component=b. The
// component is printed first so lines of one component line up.
type componentHandler struct {
	h    slog.Handler
	comp string
	// seen are the attributes already attached with WithAttrs: a package that
	// tags its logger with what its caller already did (interface=…) adds nothing.
	seen map[string]string
}

func (c *componentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return c.h.Enabled(ctx, l)
}

func (c *componentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	comp := c.comp
	rest := make([]slog.Attr, 0, len(as))
	seen, copied := c.seen, false
	for _, a := range as {
		switch v, ok := seen[a.Key]; {
		case a.Key == "component":
			comp = a.Value.String()
		case ok && v == a.Value.String():
		default:
			if !copied { // copy on first write: handlers are shared
				copied = true
				seen = make(map[string]string, len(c.seen)+len(as))
				for k, v := range c.seen {
					seen[k] = v
				}
			}
			seen[a.Key] = a.Value.String()
			rest = append(rest, a)
		}
	}
	h := c.h
	if len(rest) > 0 {
		h = h.WithAttrs(rest)
	}
	return &componentHandler{h: h, comp: comp, seen: seen}
}

func (c *componentHandler) WithGroup(name string) slog.Handler {
	return &componentHandler{h: c.h.WithGroup(name), comp: c.comp, seen: c.seen}
}

func (c *componentHandler) Handle(ctx context.Context, r slog.Record) error {
	comp := c.comp
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if comp != "" || r.NumAttrs() > 0 {
		var rest []slog.Attr
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" {
				comp = a.Value.String()
			} else {
				rest = append(rest, a)
			}
			return true
		})
		if comp != "" {
			out.AddAttrs(slog.String("component", comp))
		}
		out.AddAttrs(rest...)
	}
	return c.h.Handle(ctx, out)
}
