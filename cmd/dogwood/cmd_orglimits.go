package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/schema"
)

// orgLimitFlags are set-limits' flags with the request field each sets.
var orgLimitFlags = []struct {
	name  string
	usage string
	field func(*schema.OrgLimitsUpdate) **int
}{
	{"machines", "machines in the org", func(u *schema.OrgLimitsUpdate) **int { return &u.Machines }},
	{"apps", "apps in the org", func(u *schema.OrgLimitsUpdate) **int { return &u.Apps }},
	{"dns-records", "custom DNS records in the org", func(u *schema.OrgLimitsUpdate) **int { return &u.DNSRecords }},
	{"peers", "developer peers in the org", func(u *schema.OrgLimitsUpdate) **int { return &u.Peers }},
}

func orgsSetLimitsCommand(e *env) *cli.Command {
	flags := []cli.Flag{jsonObjectFlag}
	for _, f := range orgLimitFlags {
		flags = append(flags, &cli.IntFlag{Name: f.name, Usage: f.usage + " (`N`; 0 restores the cluster default)"})
	}
	const usage = "SLUG [--machines N] [--apps N] [--dns-records N] [--peers N]"
	return &cli.Command{
		Name: "set-limits", Usage: "override the cluster-wide per-org quotas for one org", ArgsUsage: usage,
		Description: "Flags not given stay as they are; 0 removes the org's override so the cluster default\n" +
			"(agent flags --limit-*) applies again.\n" +
			"Examples:\n  dogwood orgs set-limits acme --machines 50000 --peers 10\n  dogwood orgs set-limits acme --machines 0",
		Flags: flags, OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := oneArg(c, usage, schema.ValidOrg)
			if err != nil {
				return err
			}
			var req schema.OrgLimitsUpdate
			for _, f := range orgLimitFlags {
				if !c.IsSet(f.name) {
					continue
				}
				v := c.Int(f.name)
				if v < 0 {
					return checkInput(fmt.Errorf("invalid --%s %d: use a positive number, or 0 for the cluster default", f.name, v))
				}
				*f.field(&req) = &v
			}
			if req == (schema.OrgLimitsUpdate{}) {
				return checkInput(fmt.Errorf("nothing to set: give --machines, --apps, --dns-records or --peers (0 restores the cluster default)"))
			}
			var org schema.OrgInfo
			if err := client(c).Do(c.Context, "PATCH", "/v1/orgs/"+url.PathEscape(a[0])+"/limits", req, &org); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, org)
			}
			l := org.Limits
			fmt.Fprintf(e.stdout, "org %s limits: machines %d, apps %d, dns-records %d, peers %d (overrides: %s)\n",
				org.Slug, l.Machines, l.Apps, l.DNSRecords, l.Peers, orNone(strings.Join(l.Overrides, ", ")))
			return nil
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
