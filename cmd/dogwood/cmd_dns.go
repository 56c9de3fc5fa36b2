package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/apiclient"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/schema"
)

func dnsCommand(e *env) *cli.Command {
	networkFlag := &cli.StringFlag{Name: "network", Usage: "network of the org (`NAME`)", Value: schema.DefaultNetwork}
	return &cli.Command{
		Name:  "dns",
		Usage: "custom .internal records: AAAA, A, CNAME, TXT, SRV and ALIAS (blue/green switches)",
		Description: `Records live in one network of an org and replicate to every host; other networks
never see them. Names are relative to .internal ("api" is api.internal); they may not
use an app's name or a name Dogwood generates. ORG defaults to the only org.

Examples:
  dogwood dns add acme api ALIAS api-green        # api.internal answers api-green's machines
  dogwood dns add acme db AAAA fdaa:0:18::5 --ttl 60
  dogwood dns add acme ext CNAME db.example.com
  dogwood dns add acme _pg._tcp.db SRV "10 5 5432 db.internal"
  dogwood dns add acme '*.dev' TXT "env=dev"
  dogwood dns list acme --json
  dogwood dns remove acme api ALIAS`,
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "add a record", ArgsUsage: "[ORG] NAME TYPE VALUE",
				Description: `TYPE is AAAA, A, CNAME, TXT, SRV or ALIAS. VALUE is an address; a target name (a
name without a dot is under .internal); the TXT text (split into 255-byte strings when
served); or "PRIORITY WEIGHT PORT TARGET" for SRV. An ALIAS names an app or any name
under .internal and answers its current addresses under the alias's own name.

Examples:
  dogwood dns add acme api ALIAS api-green
  dogwood dns add api AAAA fdaa:0:18::5 --network staging --ttl 30`,
				Flags:        []cli.Flag{networkFlag, &cli.IntFlag{Name: "ttl", Usage: "time to live in `SECONDS`", Value: catalog.DefaultDNSTTL}, jsonFlag},
				OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, err := args(c, 3, 4, "[ORG] NAME TYPE VALUE")
					if err != nil {
						return err
					}
					org := ""
					if len(a) == 4 {
						org, a = a[0], a[1:]
					}
					ttl := c.Int("ttl")
					if ttl < 0 {
						return usagef("--ttl %d is negative", ttl)
					}
					if _, err := catalog.NormalizeDNSRecord(a[0], a[1], a[2], ttl); err != nil {
						return usagef("%s", err)
					}
					cl := client(c)
					if org, err = dnsOrg(c.Context, cl, org); err != nil {
						return err
					}
					rec, err := cl.AddDNSRecord(c.Context, schema.DNSRecordSpec{Org: org, Network: c.String("network"), Name: a[0], Type: a[1], Value: a[2], TTL: &ttl})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, dnsJSON(*rec))
					}
					fmt.Fprintf(e.stdout, "added %s %d %s %s in %s/%s\n", rec.Name, rec.TTL, rec.Type, rec.Value, rec.Org, rec.Network)
					return nil
				},
			},
			{
				Name: "list", Usage: "list records", ArgsUsage: "[ORG]", Flags: []cli.Flag{jsonFlag}, OnUsageError: usageHook,
				Description: "Examples:\n  dogwood dns list\n  dogwood dns list acme --json",
				Action: func(c *cli.Context) error {
					org, err := orgArg(c)
					if err != nil {
						return err
					}
					recs, err := client(c).ListDNSRecords(c.Context, org)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, dnsListJSON(recs))
					}
					var rows [][]string
					for _, r := range recs {
						rows = append(rows, []string{r.Org, r.Network, r.Name, r.Type, dnsValue(r), strconv.Itoa(int(r.TTL))})
					}
					table(e.stdout, []string{"ORG", "NETWORK", "NAME", "TYPE", "VALUE", "TTL"}, rows)
					return nil
				},
			},
			{
				Name: "remove", Usage: "remove a name's records, or those of one type, or one value", ArgsUsage: "[ORG] NAME [TYPE [VALUE]]",
				Description: `With two or three arguments, a second argument that is a record type makes it
NAME TYPE [VALUE]; otherwise the first is the org.

Examples:
  dogwood dns remove acme api              # every record of api.internal
  dogwood dns remove acme api ALIAS
  dogwood dns remove db AAAA fdaa:0:18::5`,
				Flags: []cli.Flag{networkFlag, jsonFlag}, OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, err := args(c, 1, 4, "[ORG] NAME [TYPE [VALUE]]")
					if err != nil {
						return err
					}
					f := schema.DNSRecordFilter{Network: c.String("network")}
					switch {
					case len(a) == 4 || (len(a) == 3 && isDNSType(a[2]) && !isDNSType(a[1])) || (len(a) == 2 && !isDNSType(a[1])):
						f.Org, a = a[0], a[1:]
					}
					f.Name = a[0]
					if len(a) > 1 {
						f.Type = a[1]
					}
					if len(a) > 2 {
						f.Value = a[2]
					}
					if _, err := catalog.NormalizeDNSName(f.Name); err != nil {
						return usagef("%s", err)
					}
					if f.Type != "" && !isDNSType(f.Type) {
						return usagef("record type %q: use one of %s", f.Type, strings.Join(catalog.DNSTypes(), ", "))
					}
					cl := client(c)
					if f.Org, err = dnsOrg(c.Context, cl, f.Org); err != nil {
						return err
					}
					recs, err := cl.RemoveDNSRecords(c.Context, f)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, dnsListJSON(recs))
					}
					for _, r := range recs {
						fmt.Fprintf(e.stdout, "removed %s %s %s from %s/%s\n", r.Name, r.Type, r.Value, r.Org, r.Network)
					}
					return nil
				},
			},
		},
	}
}

func isDNSType(s string) bool {
	for _, t := range catalog.DNSTypes() {
		if strings.EqualFold(s, t) {
			return true
		}
	}
	return false
}

// dnsOrg checks the org, or picks the only one there is.
func dnsOrg(ctx context.Context, cl *apiclient.Client, org string) (string, error) {
	return pickOrg(ctx, cl, org, func(n int) error {
		return usagef("name the org: there are %d orgs (dogwood dns add ORG NAME TYPE VALUE)", n)
	})
}

// dnsListJSON is records as the --json of list and remove shows them.
func dnsListJSON(recs []catalog.DNSRecord) []map[string]any {
	out := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		out = append(out, dnsJSON(r))
	}
	return out
}

func dnsValue(r catalog.DNSRecord) string {
	if r.Type == "TXT" {
		return strconv.Quote(r.Value)
	}
	return r.Value
}

func dnsJSON(r catalog.DNSRecord) map[string]any {
	return map[string]any{"org": r.Org, "network": r.Network, "name": r.Name, "type": r.Type,
		"value": r.Value, "ttl": r.TTL, "created_at": r.CreatedAt}
}
