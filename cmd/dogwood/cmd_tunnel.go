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

var configFlag = &cli.StringFlag{Name: "config", Usage: "a peer config file (from `dogwood wireguard create`): use a userspace tunnel, no root needed"}

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
		Usage:     "query .internal DNS as a machine of a network sees it",
		ArgsUsage: "NAME [TYPE]",
		Description: `With --org, the local agent answers for that org's network. With --config, the query
goes through a userspace WireGuard tunnel to fdaa:<net>::3, exactly as a laptop's would.
TYPE defaults to what the name serves (TXT for listings, SRV for services, PTR for
reverse names, else AAAA).

Examples:
  dogwood dig --org acme web.internal
  dogwood dig --org acme --short regions.web.internal
  dogwood dig --config laptop.conf top2.nearest.of.db.internal`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "org", Usage: "org whose network to query"},
			&cli.StringFlag{Name: "network", Usage: "network of the org", Value: mesh.DefaultNetwork},
			configFlag,
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
			var msg *dns.Msg
			switch {
			case c.String("config") != "" && c.String("org") != "":
				return usagef("use either --org or --config, not both")
			case c.String("config") != "":
				cfg, err := loadConfig(c.String("config"))
				if err != nil {
					return err
				}
				if msg, err = tunnel.Dig(c.Context, cfg, name, qtype); err != nil {
					return err
				}
			case c.String("org") != "":
				if err := checkInput(mesh.ValidOrg(c.String("org"))); err != nil {
					return err
				}
				var resp api.DigResponse
				req := api.DigRequest{Org: c.String("org"), Network: c.String("network"), Name: name, Type: dns.TypeToString[qtype]}
				if err := client(c).Do(c.Context, "POST", "/v1/dig", req, &resp); err != nil {
					return err
				}
				b, err := base64.StdEncoding.DecodeString(resp.Msg)
				if err != nil {
					return fmt.Errorf("agent returned a bad DNS message: %w", err)
				}
				msg = new(dns.Msg)
				if err := msg.Unpack(b); err != nil {
					return fmt.Errorf("agent returned a bad DNS message: %w", err)
				}
			default:
				return usagef("say which network: --org ORG [--network NET], or --config FILE")
			}
			fmt.Fprint(e.stdout, dnsserver.Format(msg, c.Bool("short")))
			return nil
		},
	}
}

func pingCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "ping", Usage: "ping a machine or peer through a userspace tunnel (no root)", ArgsUsage: "NAME|ADDR",
		Description: `Examples:
  dogwood ping --config laptop.conf web.internal
  dogwood ping --config laptop.conf -c 3 fdaa:0:18:a7b:7d:f066:b83b:2`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "peer config file", Required: true},
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after this many replies (0: until interrupted)", Value: 4},
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
			t, err := tunnel.Up(c.Context, cfg, tunnel.Options{})
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
		Name: "proxy", Usage: "forward a local TCP port to a machine through a userspace tunnel (no root)",
		ArgsUsage: "LOCAL_PORT:NAME:REMOTE_PORT",
		Description: `Listens on 127.0.0.1:LOCAL_PORT; every connection is resolved and dialed through the tunnel.

Example:
  dogwood proxy --config laptop.conf 8080:web.internal:80 & curl http://127.0.0.1:8080/`,
		Flags:        []cli.Flag{&cli.StringFlag{Name: "config", Usage: "peer config file", Required: true}},
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
			t, err := tunnel.Up(c.Context, cfg, tunnel.Options{Logger: logger})
			if err != nil {
				return err
			}
			defer t.Close()
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
