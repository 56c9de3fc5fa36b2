package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/schema"
	"github.com/dogwood/dogwood/peers/config"
)

func peerJSON(p schema.PeerInfo) map[string]any {
	return map[string]any{
		"name": p.Name, "org": p.Org, "network": p.Network, "region": p.Region, "gateway": p.Gateway,
		"address": p.Address, "public_key": p.PublicKey, "created_at": p.CreatedAt, "expires_at": p.ExpiresAt,
		"last_handshake": p.LastHandshake, "endpoint": p.Endpoint, "rx_bytes": p.RxBytes, "tx_bytes": p.TxBytes,
		"state": "active",
	}
}

// defaultPeerName is <user>-<host>-<random>, cleaned to the peer name grammar.
func defaultPeerName() string {
	u := "user"
	if cu, err := user.Current(); err == nil && cu.Username != "" {
		u = cu.Username
	}
	h, _ := os.Hostname()
	var b [3]byte
	rand.Read(b[:])
	clean := func(s string) string {
		var out strings.Builder
		for _, r := range s {
			if r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
				out.WriteRune(r)
			}
		}
		if out.Len() == 0 {
			return "x"
		}
		return out.String()
	}
	name := clean(u) + "-" + clean(h)
	if len(name) > 56 {
		name = name[:56]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

// dnsModeFlag is --dns of create and join (SPEC §6).
var dnsModeFlag = &cli.StringFlag{Name: "dns", Value: "full",
	Usage: "`MODE`: full (a DNS line: all DNS through the tunnel), split (only .internal, via systemd-resolved) or none"}

func wireguardCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "wireguard",
		Usage: "developer tunnels: WireGuard peers that put a laptop inside an org's network",
		Description: `A developer's tunnel starts with an invitation: no root on any server, and the
private key exists only on the laptop.

Examples:
  dogwood wireguard invite acme ord alice-laptop     # on a host; then, on the laptop:
  dogwood wireguard join dwinv1_… alice.conf
  dogwood wireguard list acme
  dogwood wireguard status acme alice-laptop
  dogwood wireguard remove acme alice-laptop
  dogwood wireguard create acme ord ci-runner ci.conf`,
		Subcommands: []*cli.Command{
			inviteCommand(e),
			joinCommand(e),
			{
				Name:      "create",
				Usage:     "create a peer and write its WireGuard config (the key pair is made here; only the public key goes to the agent)",
				ArgsUsage: "[ORG] [REGION] [NAME] [FILE]",
				Description: `ORG defaults to the only org if there is one; REGION to $DOGWOOD_WG_REGION, else the
gateway nearest this agent; NAME to <user>-<host>-<random>; FILE to stdout ("-").
FILE is created with mode 0600 and never overwritten. The command returns once the
gateway has installed the peer, so the config works immediately.

This runs where an agent is (a fleet host). To give a developer a tunnel without
root on any server, and without the private key ever leaving the laptop, use
"dogwood wireguard invite" and "dogwood wireguard join" instead.

--dns full (default) writes "DNS = fdaa:<net>::3": wg-quick then sends all of the
laptop's DNS through the tunnel (needs resolvconf). --dns split sends only .internal
there, through systemd-resolved (PostUp lines, no resolvconf). --dns none writes no
DNS setting (use "dogwood dig --config" or dig @fdaa:<net>::3).

Examples:
  dogwood wireguard create acme ord laptop laptop.conf && wg-quick up ./laptop.conf
  dogwood wireguard create acme "" ci-job - --expires 2h
  dogwood wireguard create acme ord phone phone.conf --qr
  dogwood wireguard create acme ord laptop laptop.conf --dns split
  dogwood wireguard create acme ord laptop laptop.conf --public-key "$(wg pubkey < laptop.key)"`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "network", Usage: "network `NAME` of the org", Value: schema.DefaultNetwork},
					&cli.BoolFlag{Name: "qr", Usage: "also print the config as a QR code (WireGuard mobile apps)"},
					expiresFlag("remove the peer after `DURATION` (e.g. 12h, 7d, 2w)", ""),
					dnsModeFlag,
					&cli.StringFlag{Name: "public-key", Usage: "register this WireGuard public `KEY` (made elsewhere); the file then has no private key"},
					requestIDFlag,
					jsonObjectFlag,
				},
				OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, err := paddedArgs(c, 4, "[ORG] [REGION] [NAME] [FILE]")
					if err != nil {
						return err
					}
					org, region, name, file := a[0], a[1], a[2], a[3]
					return createPeer(c.Context, c, e, org, region, name, file)
				},
			},
			{
				Name: "list", Usage: "list peers (with gateways and last handshakes) and pending invitations", ArgsUsage: "[ORG]",
				Description: "Pending invitations show with state invited.\n\nExamples:\n  dogwood wireguard list\n  dogwood wireguard list acme --json",
				Flags:       []cli.Flag{jsonFlag}, OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					org, err := orgArg(c)
					if err != nil {
						return err
					}
					var ps []schema.PeerInfo
					if err := client(c).Do(c.Context, "GET", "/v1/peers?org="+url.QueryEscape(org), nil, &ps); err != nil {
						return err
					}
					var invs []schema.InviteInfo
					if err := client(c).Do(c.Context, "GET", "/v1/invites?org="+url.QueryEscape(org), nil, &invs); err != nil {
						return err
					}
					if c.Bool("json") {
						out := make([]map[string]any, 0, len(ps)+len(invs))
						for _, p := range ps {
							out = append(out, peerJSON(p))
						}
						for _, inv := range invs {
							out = append(out, inviteJSON(inv))
						}
						return printJSON(e.stdout, out)
					}
					var rows [][]string
					for _, p := range ps {
						exp := "-"
						if p.ExpiresAt != nil {
							exp = p.ExpiresAt.Format(time.RFC3339)
						}
						rows = append(rows, []string{p.Org, p.Name, "active", p.Network, p.Region, p.Gateway, p.Address, ago(p.LastHandshake), exp})
					}
					for _, inv := range invs {
						rows = append(rows, []string{inv.Org, inv.Name, "invited", inv.Network, inv.Region, inv.Gateway, "-", "-", inv.ExpiresAt.Format(time.RFC3339)})
					}
					table(e.stdout, []string{"ORG", "NAME", "STATE", "NETWORK", "REGION", "GATEWAY", "ADDRESS", "HANDSHAKE", "EXPIRES"}, rows)
					return nil
				},
			},
			{
				Name: "remove", Usage: "remove a peer (its tunnel stops at once) or revoke a pending invitation", ArgsUsage: "ORG NAME", OnUsageError: usageHook,
				Description: "Example:\n  dogwood wireguard remove acme laptop",
				Action: func(c *cli.Context) error {
					a, _, err := peerArgs(c)
					if err != nil {
						return err
					}
					return removePeerOrInvite(c, e, a[0], a[1])
				},
			},
			{
				Name: "status", Usage: "a peer's gateway, endpoint seen, handshake age and traffic", ArgsUsage: "ORG NAME",
				Description: "Examples:\n  dogwood wireguard status acme laptop\n  dogwood wireguard status acme laptop --json",
				Flags:       []cli.Flag{jsonObjectFlag}, OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, path, err := peerArgs(c)
					if err != nil {
						return err
					}
					var p schema.PeerInfo
					if err := client(c).Do(c.Context, "GET", path, nil, &p); err != nil {
						if inv, ok := pendingInvite(c, a[0], a[1], err); ok {
							return showInvite(e, inv, c.Bool("json"))
						}
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, peerJSON(p))
					}
					fmt.Fprintf(e.stdout, "peer       %s (org %s, network %s)\n", p.Name, p.Org, p.Network)
					fmt.Fprintf(e.stdout, "address    %s\n", p.Address)
					fmt.Fprintf(e.stdout, "gateway    %s (region %s, endpoint %s)\n", p.Gateway, p.Region, p.GatewayEndpoint)
					fmt.Fprintf(e.stdout, "seen from  %s\n", orDash(p.Endpoint))
					fmt.Fprintf(e.stdout, "handshake  %s\n", ago(p.LastHandshake))
					fmt.Fprintf(e.stdout, "traffic    rx %d bytes, tx %d bytes\n", p.RxBytes, p.TxBytes)
					return nil
				},
			},
		},
	}
}

func createPeer(ctx context.Context, c *cli.Context, e *env, org, region, name, file string) error {
	cl := client(c)
	org, err := pickOrg(ctx, cl, org, func(int) error { return usagef("name the org: dogwood wireguard create ORG [REGION] [NAME] [FILE]") })
	if err != nil {
		return err
	}
	if region == "" {
		region = os.Getenv("DOGWOOD_WG_REGION")
	}
	if name == "" {
		name = defaultPeerName()
	}
	if file == "" {
		file = "-"
	}
	if err := checkRegionName(region, name); err != nil {
		return err
	}
	// Check the file before anything is registered: a bad path must not leave a peer.
	if err := config.Check(file); err != nil {
		return &usageError{err.Error()}
	}
	mode, err := config.ParseDNSMode(c.String("dns"))
	if err != nil {
		return usagef("--dns: %v", err)
	}
	expires, err := durationArg(c, "expires")
	if err != nil {
		return err
	}
	var priv, pub wgtypes.Key
	if k := c.String("public-key"); k != "" {
		if pub, err = wgtypes.ParseKey(k); err != nil || pub == (wgtypes.Key{}) {
			return usagef("--public-key %q is not a WireGuard public key (base64 of 32 bytes, from `wg pubkey`)", k)
		}
	} else if priv, pub, err = config.GenerateKey(); err != nil {
		return err
	}
	rid, err := requestID(c)
	if err != nil {
		return err
	}
	spec := schema.PeerSpec{Org: org, Network: c.String("network"), Region: region, Name: name, PublicKey: pub.String(), RequestID: rid}
	if expires != 0 {
		t := time.Now().Add(expires).UTC()
		spec.ExpiresAt = &t
	}
	var p schema.PeerInfo
	if err := cl.DoRetry(ctx, "POST", "/v1/peers", spec, &p); err != nil {
		return err
	}
	undo := func(cause error) error {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cl.Do(uctx, "DELETE", "/v1/peers/"+url.PathEscape(org)+"/"+url.PathEscape(name), nil, nil); err != nil {
			return fmt.Errorf("%w (and removing the half-created peer failed: %v)", cause, err)
		}
		return cause
	}
	cfg, err := buildPeerConfig(priv, pub, p, mode)
	if err != nil {
		return undo(err)
	}
	if err := config.Write(file, cfg, e.stdout); err != nil {
		return undo(err)
	}
	if c.Bool("qr") {
		if err := config.WriteQR(e.stdout, cfg); err != nil {
			return err
		}
	}
	if !config.IsStdout(file) {
		if c.Bool("json") {
			return printJSON(e.stdout, peerJSON(p))
		}
		fmt.Fprintf(e.stderr, "created peer %s in org %s on gateway %s (%s), config in %s\n", p.Name, p.Org, p.Gateway, p.Address, file)
	}
	if priv == (wgtypes.Key{}) {
		fmt.Fprintf(e.stderr, "the config has no private key: put the private key of %s where its first lines say\n", pub)
	}
	return nil
}

// buildPeerConfig renders the config of peer p for a key pair: priv is zero
// when only the public key pub is known here (--public-key).
func buildPeerConfig(priv, pub wgtypes.Key, p schema.PeerInfo, mode config.DNSMode) (config.Config, error) {
	cfg, err := baseConfig(priv, p)
	if err != nil {
		return cfg, err
	}
	if err := cfg.SetDNSMode(mode, cfg.DNS[0]); err != nil {
		return cfg, err
	}
	if priv == (wgtypes.Key{}) {
		cfg.WithoutPrivateKey(pub)
	}
	return cfg, nil
}

func baseConfig(priv wgtypes.Key, p schema.PeerInfo) (config.Config, error) {
	if priv == (wgtypes.Key{}) {
		// config.New wants a key; WithoutPrivateKey drops this one.
		var err error
		if priv, _, err = config.GenerateKey(); err != nil {
			return config.Config{}, err
		}
	}
	addr, err := netip.ParseAddr(p.Address)
	if err != nil {
		return config.Config{}, fmt.Errorf("agent returned a bad peer address %q", p.Address)
	}
	dns, err := netip.ParseAddr(p.DNS)
	if err != nil {
		return config.Config{}, fmt.Errorf("agent returned a bad DNS address %q", p.DNS)
	}
	gw, err := wgtypes.ParseKey(p.GatewayPublicKey)
	if err != nil {
		return config.Config{}, fmt.Errorf("gateway %s has no valid public key", p.Gateway)
	}
	prefix, err := netip.ParsePrefix(p.NetworkPrefix)
	if err != nil {
		return config.Config{}, fmt.Errorf("agent returned a bad network prefix %q", p.NetworkPrefix)
	}
	return config.New(priv, addr, dns, gw, prefix, p.GatewayEndpoint)
}

// peerArgs checks ORG NAME and returns them with the peer's API path.
func peerArgs(c *cli.Context) ([]string, string, error) {
	a, err := args(c, 2, 2, "ORG NAME")
	if err != nil {
		return nil, "", err
	}
	if err := checkInput(schema.ValidOrg(a[0])); err != nil {
		return nil, "", err
	}
	if err := checkInput(schema.ValidPeerName(a[1])); err != nil {
		return nil, "", err
	}
	return a, "/v1/peers/" + url.PathEscape(a[0]) + "/" + url.PathEscape(a[1]), nil
}
