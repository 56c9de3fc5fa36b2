package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/apiclient"
	"github.com/dogwood/dogwood/mesh/invite"
	"github.com/dogwood/dogwood/mesh/schema"
	"github.com/dogwood/dogwood/peers/config"
)

func inviteCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "invite",
		Usage:     "issue a single-use code a developer redeems with \"dogwood wireguard join\" (no root, no agent on the laptop)",
		ArgsUsage: "[ORG] [REGION] [NAME]",
		Description: `Runs on any host with an agent. The code names the nearest gateway (in REGION if
given) and pins its TLS certificate; the developer's laptop redeems it there with
"dogwood wireguard join CODE FILE", which makes the key pair on the laptop: the
private key never exists anywhere else. The code works once, until --expires
(default 1h); "dogwood wireguard list" shows it as invited until then, and
"dogwood wireguard remove ORG NAME" revokes it. NAME defaults to dev-<random>.

Examples:
  dogwood wireguard invite acme ord alice-laptop
  dogwood wireguard invite acme "" ci-runner --expires 10m --dns none
  dogwood wireguard invite acme --expires 2d --dns split`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "network", Usage: "network `NAME` of the org", Value: schema.DefaultNetwork},
			expiresFlag("the code is valid for `DURATION` (e.g. 30m, 1h, 7d)", "1h"),
			dnsModeFlag,
			jsonObjectFlag,
		},
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := paddedArgs(c, 3, "[ORG] [REGION] [NAME]")
			if err != nil {
				return err
			}
			return createInvite(c, e, a[0], a[1], a[2])
		},
	}
}

func defaultInviteName() string {
	var b [3]byte
	rand.Read(b[:])
	return "dev-" + hex.EncodeToString(b[:])
}

func createInvite(c *cli.Context, e *env, org, region, name string) error {
	cl := client(c)
	org, err := pickOrg(c.Context, cl, org, func(int) error { return usagef("name the org: dogwood wireguard invite ORG [REGION] [NAME]") })
	if err != nil {
		return err
	}
	if name == "" {
		name = defaultInviteName()
	}
	if err := checkRegionName(region, name); err != nil {
		return err
	}
	mode, err := config.ParseDNSMode(c.String("dns"))
	if err != nil {
		return usagef("--dns: %v", err)
	}
	ttl, err := durationArg(c, "expires")
	if err != nil {
		return err
	}
	spec := schema.InviteSpec{Org: org, Network: c.String("network"), Region: region, Name: name, DNS: string(mode),
		ExpiresAt: time.Now().Add(ttl).UTC()}
	var inv schema.InviteInfo
	if err := cl.Do(c.Context, "POST", "/v1/invites", spec, &inv); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(e.stdout, inviteJSON(inv))
	}
	fmt.Fprintln(e.stdout, inv.Code)
	fmt.Fprintf(e.stderr, "invitation for peer %s in org %s (gateway %s, region %s), single use, valid until %s.\n"+
		"On the laptop, as any user: dogwood wireguard join CODE %s.conf\n",
		inv.Name, inv.Org, inv.Gateway, inv.Region, inv.ExpiresAt.Local().Format(time.RFC3339), inv.Name)
	return nil
}

// inviteJSON is a pending invitation as `wireguard list --json` and `invite
// --json` show it: the peer fields it will have, state "invited".
func inviteJSON(inv schema.InviteInfo) map[string]any {
	m := map[string]any{
		"name": inv.Name, "org": inv.Org, "network": inv.Network, "region": inv.Region, "gateway": inv.Gateway,
		"address": nil, "public_key": nil, "created_at": inv.CreatedAt, "expires_at": inv.ExpiresAt,
		"last_handshake": nil, "state": "invited", "dns": inv.DNS,
	}
	if inv.Code != "" {
		m["code"] = inv.Code
	}
	return m
}

func joinCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "redeem an invite code: make a key pair here and write the WireGuard config (no agent, no root)",
		ArgsUsage: "CODE [FILE]",
		Description: `Generates the key pair on this machine, sends only the public key to the gateway
the code names (over TLS, trusting only the certificate the code pins), and writes
FILE like "dogwood wireguard create" does: mode 0600, never over an existing file;
"-" or no FILE prints it. A code that was used, expired, revoked or altered fails
with exit status 1 and creates nothing.

--dns overrides the DNS mode the invitation chose: full writes a DNS line (wg-quick
then needs resolvconf and sends all DNS through the tunnel), split sends only
.internal through systemd-resolved, none writes nothing.

Examples:
  dogwood wireguard join dwinv1_… laptop.conf && sudo wg-quick up ./laptop.conf
  dogwood wireguard join "$CODE" ~/wg/acme.conf --dns split
  dogwood dig --config laptop.conf web.internal`,
		Flags:        []cli.Flag{&cli.StringFlag{Name: "dns", Usage: "`MODE`: full, split or none (default: the invitation's)"}, jsonObjectFlag},
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 2, "CODE [FILE]")
			if err != nil {
				return err
			}
			file := "-"
			if len(a) == 2 {
				file = a[1]
			}
			return joinInvite(c.Context, e, a[0], file, c.String("dns"), c.Bool("json"))
		},
	}
}

func joinInvite(ctx context.Context, e *env, codeText, file, dnsOverride string, asJSON bool) error {
	code, err := invite.Decode(codeText)
	if err != nil {
		return err // SPEC §6: an altered code is a failed operation (1), like a used one
	}
	if dnsOverride != "" {
		if _, err := config.ParseDNSMode(dnsOverride); err != nil {
			return usagef("--dns: %v", err)
		}
	}
	// Before redeeming: a code is single use, so a bad path must not spend it.
	if err := config.Check(file); err != nil {
		return &usageError{err.Error()}
	}
	priv, pub, err := config.GenerateKey()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := invite.Redeem(rctx, code, pub.String())
	if err != nil {
		return fmt.Errorf("joining: %w", err)
	}
	mode, _ := config.ParseDNSMode(resp.DNSMode)
	if dnsOverride != "" {
		mode, _ = config.ParseDNSMode(dnsOverride)
	}
	p := schema.PeerInfo{Name: resp.Name, Org: resp.Org, Network: resp.Network, Region: resp.Region, Gateway: resp.Gateway,
		Address: resp.Address, DNS: resp.DNS, NetworkPrefix: resp.NetworkPrefix,
		GatewayPublicKey: resp.GatewayPublicKey, GatewayEndpoint: resp.GatewayEndpoint, PublicKey: pub.String()}
	cfg, err := buildPeerConfig(priv, pub, p, mode)
	if err == nil {
		err = config.Write(file, cfg, e.stdout)
	}
	if err != nil {
		// The peer exists now and the code is spent; say so plainly.
		return fmt.Errorf("peer %s was created in org %s, but its config could not be written: %v (ask for its removal with `dogwood wireguard remove %s %s` and a new invitation)",
			p.Name, p.Org, err, p.Org, p.Name)
	}
	if !config.IsStdout(file) {
		if asJSON {
			return printJSON(e.stdout, map[string]any{"name": p.Name, "org": p.Org, "network": p.Network, "region": p.Region,
				"gateway": p.Gateway, "address": p.Address, "public_key": p.PublicKey, "dns": string(mode), "file": file})
		}
		fmt.Fprintf(e.stderr, "joined org %s as peer %s (%s) through gateway %s; config in %s\n", p.Org, p.Name, p.Address, p.Gateway, file)
		fmt.Fprint(e.stderr, joinNextSteps(file, mode))
	}
	return nil
}

// pendingInvite finds the pending invitation for a peer the agent did not
// find (err is that 404).
func pendingInvite(c *cli.Context, org, name string, err error) (schema.InviteInfo, bool) {
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Status != 404 {
		return schema.InviteInfo{}, false
	}
	var invs []schema.InviteInfo
	if client(c).Do(c.Context, "GET", "/v1/invites?org="+url.QueryEscape(org), nil, &invs) != nil {
		return schema.InviteInfo{}, false
	}
	for _, inv := range invs {
		if inv.Name == name {
			return inv, true
		}
	}
	return schema.InviteInfo{}, false
}

func showInvite(e *env, inv schema.InviteInfo, asJSON bool) error {
	if asJSON {
		return printJSON(e.stdout, inviteJSON(inv))
	}
	fmt.Fprintf(e.stdout, "peer       %s (org %s, network %s)\n", inv.Name, inv.Org, inv.Network)
	fmt.Fprintf(e.stdout, "state      invited: the code was not redeemed yet (DNS mode %s)\n", inv.DNS)
	fmt.Fprintf(e.stdout, "gateway    %s (region %s)\n", inv.Gateway, inv.Region)
	fmt.Fprintf(e.stdout, "expires    %s\n", inv.ExpiresAt.Format(time.RFC3339))
	return nil
}

// removePeerOrInvite is `wireguard remove`: a peer, else a pending invitation.
func removePeerOrInvite(c *cli.Context, e *env, org, name string) error {
	cl := client(c)
	err := cl.Do(c.Context, "DELETE", "/v1/peers/"+url.PathEscape(org)+"/"+url.PathEscape(name), nil, nil)
	var ae *apiclient.Error
	if err == nil {
		fmt.Fprintf(e.stdout, "removed peer %s from org %s\n", name, org)
		return nil
	}
	if !errors.As(err, &ae) || ae.Status != 404 {
		return err
	}
	if ierr := cl.Do(c.Context, "DELETE", "/v1/invites/"+url.PathEscape(org)+"/"+url.PathEscape(name), nil, nil); ierr != nil {
		if errors.As(ierr, &ae) && ae.Status == 404 {
			return fmt.Errorf("no peer and no pending invitation named %q in org %q", name, org)
		}
		return ierr
	}
	fmt.Fprintf(e.stdout, "revoked the invitation for peer %s in org %s\n", name, org)
	return nil
}

// wgQuickArg is how FILE must be spelled on wg-quick's command line: wg-quick
// takes a bare word like "acme.conf" for an interface name and looks for
// /etc/wireguard/acme.conf.conf, so a file in the current directory needs
// "./". The second result says why wg-quick would still refuse the file (the
// interface is named after it and Linux caps names at 15 bytes).
func wgQuickArg(file string) (arg, problem string) {
	arg = file
	if !strings.Contains(file, "/") {
		arg = "./" + file
	}
	iface := strings.TrimSuffix(filepath.Base(file), ".conf")
	switch {
	case !strings.HasSuffix(file, ".conf"):
		problem = "wg-quick only takes files named INTERFACE.conf: rename it"
	case !wgQuickIfaceRE.MatchString(iface):
		problem = fmt.Sprintf("wg-quick names the interface %q after the file, and interface names are at most 15 letters, digits or _=+.-: rename it", iface)
	}
	return shellQuote(arg), problem
}

// wgQuickIfaceRE and shellSafeRE are matched by hand: a regexp compiled at
// package init costs every CLI call its compile time.
var (
	wgQuickIfaceRE = charsRule{max: 15, chars: "_=+.-"}
	shellSafeRE    = charsRule{max: 4096, chars: "_./=+:@%-"}
)

// charsRule matches 1..max letters, digits and bytes of chars.
type charsRule struct {
	max   int
	chars string
}

func (r charsRule) MatchString(s string) bool {
	if len(s) == 0 || len(s) > r.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(r.chars, c) >= 0) {
			return false
		}
	}
	return true
}

// shellQuote quotes s for a POSIX shell when it needs it, so a printed command
// can be pasted as it is.
func shellQuote(s string) string {
	if shellSafeRE.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// joinNextSteps is what `wireguard join` prints after writing FILE: commands
// that work when pasted as they are.
func joinNextSteps(file string, mode config.DNSMode) string {
	arg, problem := wgQuickArg(file)
	var b strings.Builder
	switch mode {
	case config.DNSFull:
		fmt.Fprintf(&b, "next: sudo wg-quick up %s (its DNS line needs resolvconf; --dns split or none avoids that)\n", arg)
	default:
		fmt.Fprintf(&b, "next: sudo wg-quick up %s, or without root: dogwood dig --config %s web.internal\n", arg, shellQuote(file))
	}
	if problem != "" {
		fmt.Fprintf(&b, "note: %s\n", problem)
	}
	return b.String()
}
