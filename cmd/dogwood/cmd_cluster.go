package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/schema"
)

func keygenCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "keygen", Usage: "print a new gossip key (base64 of 32 random bytes)", OnUsageError: usageHook,
		Description: "Example:\n  (umask 077; dogwood keygen > /etc/dogwood/gossip.key)",
		Action: func(c *cli.Context) error {
			if _, err := args(c, 0, 0, ""); err != nil {
				return err
			}
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(b[:]))
			return nil
		},
	}
}

// memberVersion is the VERSION column: the release, "?" when not heard yet, and
// "(cannot talk)" after a member this host cannot exchange messages with.
func memberVersion(m schema.MemberInfo) string {
	v := m.Version
	if v == "" {
		v = "?"
	}
	if m.VersionProblem != "" {
		v += " (cannot talk)"
	}
	return v
}

func membersCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "members", Usage: "list the cluster's hosts with their status (alive, suspect, failed, left)",
		Description: "Examples:\n  dogwood members\n  dogwood members --json\n  dogwood members remove host4",
		Flags:       []cli.Flag{jsonFlag}, OnUsageError: usageHook,
		Action: listAction(e, "[--json]", func(*cli.Context) string { return "/v1/members" }, nil, func(ms []schema.MemberInfo) ([]string, [][]string) {
			var rows [][]string
			for _, m := range ms {
				gw := ""
				if m.Gateway {
					gw = "gateway " + m.Endpoint
				}
				rows = append(rows, []string{m.Name, m.HostIDHex, m.Region, m.Addr, m.Status, memberVersion(m), orDash(gw), orDash(m.PublicKey)})
				if m.VersionProblem != "" {
					fmt.Fprintf(e.stderr, "cannot talk to %s because of versions: %s\n", m.Name, m.VersionProblem)
				}
			}
			return []string{"NAME", "HOST ID", "REGION", "ADDR", "STATUS", "VERSION", "GATEWAY", "PUBLIC KEY"}, rows
		}),
		Subcommands: []*cli.Command{removeCommand(e, "remove a host that is gone for good (tombstones its machines and peers)", "NAME", schema.ValidHostName, "/v1/members/", "host", "dogwood members remove host4")},
	}
}

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "status", Usage: "this host: identity, catalog counts, WireGuard peers with handshake ages",
		Description: "Examples:\n  dogwood status\n  dogwood status --json --agent /run/dogwood/api.sock",
		Flags:       []cli.Flag{jsonObjectFlag}, OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			if _, err := args(c, 0, 0, "[--json]"); err != nil {
				return err
			}
			var st schema.Status
			if err := client(c).Do(c.Context, "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, st)
			}
			fmt.Fprintf(e.stdout, "host       %s (id %s, region %s)\n", st.Name, st.HostIDHex, st.Region)
			fmt.Fprintf(e.stdout, "public key %s\n", orDash(st.PublicKey))
			if st.APIFingerprint != "" {
				fmt.Fprintf(e.stdout, "api cert   %s\n", st.APIFingerprint)
			}
			var counts []string
			for _, k := range slices.Sorted(maps.Keys(st.Catalog)) {
				counts = append(counts, fmt.Sprintf("%s=%d", k, st.Catalog[k]))
			}
			fmt.Fprintf(e.stdout, "catalog    %s\n", strings.Join(counts, " "))
			var members []string
			for _, k := range slices.Sorted(maps.Keys(st.Members)) {
				members = append(members, fmt.Sprintf("%s=%d", k, st.Members[k]))
			}
			fmt.Fprintf(e.stdout, "members    %s\n", strings.Join(members, " "))
			if st.WireGuard == nil {
				fmt.Fprintln(e.stdout, "wireguard  off")
				return nil
			}
			fmt.Fprintf(e.stdout, "wireguard  %s (%s, port %d), %d peers\n", st.WireGuard.Interface, st.WireGuard.Mode, st.WireGuard.Port, len(st.WireGuard.Peers))
			var rows [][]string
			for _, p := range st.WireGuard.Peers {
				reach := "-"
				if p.Reachable != nil {
					reach = map[bool]string{true: "yes", false: "no"}[*p.Reachable]
				}
				rows = append(rows, []string{orDash(p.Host), p.PublicKey, orDash(p.Endpoint), ago(p.LastHandshake),
					fmt.Sprint(p.RxBytes), fmt.Sprint(p.TxBytes), reach})
			}
			if len(rows) > 0 {
				table(e.stdout, []string{"PEER", "PUBLIC KEY", "ENDPOINT", "HANDSHAKE", "RX", "TX", "REACHABLE"}, rows)
			}
			return nil
		},
	}
}
