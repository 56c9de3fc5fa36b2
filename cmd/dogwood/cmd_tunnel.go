//go:build agent

package main

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"

	dnsserver "github.com/dogwood/dogwood/dns/server"
	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/api"
	"github.com/dogwood/dogwood/peers/config"
	"github.com/dogwood/dogwood/peers/tunnel"
)

// configFlag is --config FILE of dig, ping and proxy. (urfave takes a
// back-quoted word in a usage string as the value's placeholder.)
func configFlag(required bool) *cli.StringFlag {
	return &cli.StringFlag{Name: "config", Required: required,
		Usage: "peer config `FILE` (from dogwood wireguard create or join): through the tunnel, no root needed"}
}

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.ReadFile(path)
	if err != nil {
		return config.Config{}, &usageError{err.Error()}
	}
	return cfg, nil
}

func digCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "dig",
		Usage:     digUsage,
		ArgsUsage: "NAME [TYPE]",
		Description: `With --org, the local agent answers for that org's network. With --config, the query
goes to fdaa:<net>::3 through the tunnel, exactly as a laptop's would: through the
tunnel that is already up when the config's address is on this machine (wg-quick),
else through a userspace WireGuard tunnel of its own (no root needed).
TYPE defaults to what the name serves (TXT for listings, SRV for services, PTR for
reverse names, else AAAA).

Examples:
  dogwood dig --org acme web.internal
  dogwood dig --org acme --short regions.web.internal
  dogwood dig --config laptop.conf top2.nearest.of.db.internal`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "org", Usage: "org `SLUG` whose network to query"},
			&cli.StringFlag{Name: "network", Usage: "network `NAME` of the org", Value: mesh.DefaultNetwork},
			configFlag(false),
			&cli.BoolFlag{Name: "short", Usage: "print only the answer values"},
		},
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 2, "[--org ORG [--network NET] | --config FILE] [--short] NAME [TYPE]")
			if err != nil {
				return err
			}
			name := a[0]
			if _, ok := dns.IsDomainName(name); !ok {
				return usagef("invalid DNS name %q", name)
			}
			qtype := dnsserver.DefaultType(dns.Fqdn(name))
			if len(a) == 2 {
				if qtype, err = dnsserver.ParseType(a[1]); err != nil {
					return &usageError{err.Error()}
				}
			}
			var query func(name string, qtype uint16) (*dns.Msg, error)
			switch {
			case c.String("config") != "" && c.String("org") != "":
				return usagef("use either --org or --config, not both")
			case c.String("config") != "":
				cfg, err := loadConfig(c.String("config"))
				if err != nil {
					return err
				}
				t, err := tunnel.Open(c.Context, cfg, tunnel.Options{})
				if err != nil {
					return err
				}
				defer t.Close()
				query = func(name string, qtype uint16) (*dns.Msg, error) { return t.Dig(c.Context, name, qtype) }
			case c.String("org") != "":
				if err := checkInput(mesh.ValidOrg(c.String("org"))); err != nil {
					return err
				}
				query = func(name string, qtype uint16) (*dns.Msg, error) {
					return agentDig(c, c.String("org"), c.String("network"), name, qtype)
				}
			default:
				return usagef("say which network: --org ORG [--network NET], or --config FILE")
			}
			msg, err := query(name, qtype)
			if err != nil {
				return err
			}
			fmt.Fprint(e.stdout, dnsserver.Format(msg, c.Bool("short")))
			ipv6OnlyHint(e, msg, name, qtype, query)
			return nil
		},
	}
}

func agentDig(c *cli.Context, org, network, name string, qtype uint16) (*dns.Msg, error) {
	var resp api.DigResponse
	req := api.DigRequest{Org: org, Network: network, Name: name, Type: dns.TypeToString[qtype]}
	if err := client(c).Do(c.Context, "POST", "/v1/dig", req, &resp); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(resp.Msg)
	if err != nil {
		return nil, fmt.Errorf("agent returned a bad DNS message: %w", err)
	}
	msg := new(dns.Msg)
	if err := msg.Unpack(b); err != nil {
		return nil, fmt.Errorf("agent returned a bad DNS message: %w", err)
	}
	return msg, nil
}

// ipv6OnlyHint explains an empty A answer for a .internal name that has AAAA
// records: 6PN is IPv6-only, and `dig NAME` asks for A by habit.
func ipv6OnlyHint(e *env, msg *dns.Msg, name string, qtype uint16, query func(string, uint16) (*dns.Msg, error)) {
	if qtype != dns.TypeA || msg.Rcode != dns.RcodeSuccess || len(msg.Answer) != 0 ||
		!strings.HasSuffix(strings.ToLower(dns.Fqdn(name)), ".internal.") {
		return
	}
	r, err := query(name, dns.TypeAAAA)
	if err != nil {
		return
	}
	n := 0
	for _, rr := range r.Answer {
		if _, ok := rr.(*dns.AAAA); ok {
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(e.stderr, ";; %s has no A record: 6PN is IPv6-only. It has %d AAAA record(s): ask for AAAA (dogwood dig ... %s AAAA)\n", name, n, name)
	}
}

func pingCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "ping", Usage: pingUsage, ArgsUsage: "NAME|ADDR",
		Description: `Examples:
  dogwood ping --config laptop.conf web.internal
  dogwood ping --config laptop.conf -c 3 fdaa:0:18:a7b:7d:f066:b83b:2`,
		Flags: []cli.Flag{
			configFlag(true),
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after `N` replies (0: until interrupted)", Value: 4},
		},
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "--config FILE NAME|ADDR")
			if err != nil {
				return err
			}
			cfg, err := loadConfig(c.String("config"))
			if err != nil {
				return err
			}
			t, err := tunnel.Open(c.Context, cfg, tunnel.Options{})
			if err != nil {
				return err
			}
			defer t.Close()
			return t.Ping(c.Context, a[0], c.Int("count"), e.stdout)
		},
	}
}

func proxyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "proxy", Usage: proxyUsage,
		ArgsUsage: "LOCAL_PORT:NAME:REMOTE_PORT",
		Description: `Listens on 127.0.0.1:LOCAL_PORT; every connection is resolved and dialed through the tunnel.

Example:
  dogwood proxy --config laptop.conf 8080:web.internal:80 & curl http://127.0.0.1:8080/`,
		Flags:        []cli.Flag{configFlag(true)},
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "--config FILE LOCAL_PORT:NAME:REMOTE_PORT")
			if err != nil {
				return err
			}
			local, name, remote, err := parseProxySpec(a[0])
			if err != nil {
				return err
			}
			cfg, err := loadConfig(c.String("config"))
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			// Share: dig and ping of the same config while the proxy runs use
			// its session instead of taking the gateway's away from it.
			t, err := tunnel.Open(c.Context, cfg, tunnel.Options{Logger: logger, Share: true})
			if err != nil {
				return err
			}
			defer t.Close()
			if t.Shared() {
				logger.Info("the config's tunnel is already up on this machine: proxying through it")
			}
			return t.Proxy(c.Context, net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), name, remote)
		},
	}
}

// parseProxySpec splits LOCAL_PORT:NAME:REMOTE_PORT; NAME may be a bracketed IPv6
// address ("8080:[fdaa:0:18::2]:80").
func parseProxySpec(s string) (int, string, int, error) {
	bad := usagef("invalid proxy spec %q: want LOCAL_PORT:NAME:REMOTE_PORT, e.g. 8080:web.internal:80", s)
	lp, rest, ok := strings.Cut(s, ":")
	if !ok {
		return 0, "", 0, bad
	}
	i := strings.LastIndex(rest, ":")
	if i <= 0 {
		return 0, "", 0, bad
	}
	name, rp := strings.Trim(rest[:i], "[]"), rest[i+1:]
	local, err1 := strconv.Atoi(lp)
	remote, err2 := strconv.Atoi(rp)
	if err1 != nil || err2 != nil || local < 1 || local > 65535 || remote < 1 || remote > 65535 || name == "" {
		return 0, "", 0, bad
	}
	return local, name, remote, nil
}
