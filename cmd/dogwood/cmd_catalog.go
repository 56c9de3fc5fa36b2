package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/apiclient"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/schema"
)

func checkInput(err error) error {
	if err != nil {
		return &usageError{err.Error()}
	}
	return nil
}

// orgArg takes the optional [ORG] of list commands ("" lists every org).
func orgArg(c *cli.Context) (string, error) {
	a, err := args(c, 0, 1, "[ORG] [--json]")
	if err != nil {
		return "", err
	}
	if len(a) == 0 {
		return "", nil
	}
	return a[0], checkInput(schema.ValidOrg(a[0]))
}

// pickOrg checks the org, or picks the only one there is; nameIt is the
// usage error when there are n orgs to choose from.
func pickOrg(ctx context.Context, cl *apiclient.Client, org string, nameIt func(n int) error) (string, error) {
	if org != "" {
		return org, checkInput(schema.ValidOrg(org))
	}
	var orgs []schema.OrgInfo
	if err := cl.Do(ctx, "GET", "/v1/orgs", nil, &orgs); err != nil {
		return "", err
	}
	if len(orgs) != 1 {
		return "", nameIt(len(orgs))
	}
	return orgs[0].Slug, nil
}

// checkRegionName checks the optional region and the name of a peer to be.
func checkRegionName(region, name string) error {
	if region != "" {
		if err := checkInput(schema.ValidRegion(region)); err != nil {
			return err
		}
	}
	return checkInput(schema.ValidPeerName(name))
}

func orgsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "orgs",
		Usage:       "create, list and remove orgs (tenants)",
		Description: "Examples:\n  dogwood orgs create acme\n  dogwood orgs list --json\n  dogwood orgs set-limits acme --machines 50000\n  dogwood orgs remove acme",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create an org with its default network", ArgsUsage: "SLUG",
				Description: "Example:\n  dogwood orgs create acme",
				Flags:       []cli.Flag{jsonObjectFlag}, OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, err := oneArg(c, "SLUG", schema.ValidOrg)
					if err != nil {
						return err
					}
					var org schema.OrgInfo
					if err := client(c).Do(c.Context, "POST", "/v1/orgs", map[string]string{"slug": a[0]}, &org); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, org)
					}
					for _, n := range org.Networks {
						fmt.Fprintf(e.stdout, "created org %s (network %s %s)\n", org.Slug, n.Name, n.Prefix)
					}
					return nil
				},
			},
			{
				Name: "list", Usage: "list orgs and their networks", Flags: []cli.Flag{jsonFlag}, OnUsageError: usageHook,
				Description: "Examples:\n  dogwood orgs list\n  dogwood orgs list --json",
				Action: listAction(e, "[--json]", func(*cli.Context) string { return "/v1/orgs" }, nil, func(orgs []schema.OrgInfo) ([]string, [][]string) {
					var rows [][]string
					for _, o := range orgs {
						var nets []string
						for _, n := range o.Networks {
							nets = append(nets, n.Name+"="+n.Prefix)
						}
						rows = append(rows, []string{o.Slug, strings.Join(nets, " ")})
					}
					return []string{"SLUG", "NETWORKS"}, rows
				}),
			},
			orgsSetLimitsCommand(e),
			removeCommand(e, "remove an org that has no apps or peers", "SLUG", schema.ValidOrg, "/v1/orgs/", "org", "dogwood orgs remove acme"),
		},
	}
}

func networksCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "networks",
		Usage:       "create and list an org's private networks (/48 each)",
		Description: "Examples:\n  dogwood networks create staging --org acme\n  dogwood networks list --org acme",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a network in an org", ArgsUsage: "NAME --org SLUG",
				Description: "Example:\n  dogwood networks create staging --org acme",
				Flags:       []cli.Flag{&cli.StringFlag{Name: "org", Usage: "org `SLUG`", Required: true}, jsonObjectFlag}, OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, err := oneArg(c, "NAME --org SLUG", schema.ValidNetwork)
					if err != nil {
						return err
					}
					if err := checkInput(schema.ValidOrg(c.String("org"))); err != nil {
						return err
					}
					var n schema.NetworkInfo
					if err := client(c).Do(c.Context, "POST", "/v1/networks", map[string]string{"org": c.String("org"), "name": a[0]}, &n); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, n)
					}
					fmt.Fprintf(e.stdout, "created network %s in org %s: %s\n", n.Name, n.Org, n.Prefix)
					return nil
				},
			},
			{
				Name: "list", Usage: "list networks", Flags: []cli.Flag{&cli.StringFlag{Name: "org", Usage: "only this org (`SLUG`)"}, jsonFlag}, OnUsageError: usageHook,
				Description: "Examples:\n  dogwood networks list\n  dogwood networks list --org acme --json",
				Action: listAction(e, "[--org SLUG] [--json]", orgQuery("/v1/networks"), nil, func(nets []schema.NetworkInfo) ([]string, [][]string) {
					var rows [][]string
					for _, n := range nets {
						rows = append(rows, []string{n.Org, n.Name, fmt.Sprintf("%08x", n.ID), n.Prefix})
					}
					return []string{"ORG", "NAME", "ID", "PREFIX"}, rows
				}),
			},
		},
	}
}

func appsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "apps",
		Usage:       "create, list and remove apps",
		Description: "Examples:\n  dogwood apps create web --org acme\n  dogwood apps list\n  dogwood apps remove web",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create an app in an org's network", ArgsUsage: "NAME --org SLUG [--network NAME]",
				Description: "Examples:\n  dogwood apps create web --org acme\n  dogwood apps create db --org acme --network staging",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "org", Usage: "org `SLUG`", Required: true},
					&cli.StringFlag{Name: "network", Usage: "network `NAME`", Value: schema.DefaultNetwork},
					whenNoneFlag,
					requestIDFlag,
					jsonObjectFlag,
				}, OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					a, err := args(c, 1, 1, "NAME --org SLUG [--network NAME]")
					if err != nil {
						return err
					}
					for _, err := range []error{schema.ValidApp(a[0]), schema.ValidOrg(c.String("org")), schema.ValidNetwork(c.String("network"))} {
						if err := checkInput(err); err != nil {
							return err
						}
					}
					if err := checkWhenNone(c); err != nil {
						return err
					}
					rid, err := requestID(c)
					if err != nil {
						return err
					}
					body := map[string]string{"name": a[0], "org": c.String("org"), "network": c.String("network"), "request_id": rid}
					if v := c.String("when-none-healthy"); v != "" {
						body["when_none_healthy"] = v // only when given: an agent of the previous release refuses the field
					}
					var app catalog.App
					if err := client(c).DoRetry(c.Context, "POST", "/v1/apps", body, &app); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, appJSON(app))
					}
					fmt.Fprintf(e.stdout, "created app %s in %s/%s\n", app.Name, app.Org, app.Network)
					return nil
				},
			},
			{
				Name: "list", Usage: "list apps", Flags: []cli.Flag{&cli.StringFlag{Name: "org", Usage: "only this org (`SLUG`)"}, jsonFlag}, OnUsageError: usageHook,
				Description: "Examples:\n  dogwood apps list\n  dogwood apps list --org acme --json",
				Action: listAction(e, "[--org SLUG] [--json]", orgQuery("/v1/apps"), func(apps []catalog.App) any {
					out := make([]map[string]any, 0, len(apps))
					for _, a := range apps {
						out = append(out, appJSON(a))
					}
					return out
				}, func(apps []catalog.App) ([]string, [][]string) {
					var rows [][]string
					for _, a := range apps {
						rows = append(rows, []string{a.Name, a.Org, a.Network})
					}
					return []string{"NAME", "ORG", "NETWORK"}, rows
				}),
			},
			appsUpdateCommand(e),
			withOrgFlag(removeCommand(e, "remove an app that has no machines", "NAME", schema.ValidApp, "/v1/apps/", "app", "dogwood apps remove web --org acme")),
		},
	}
}

func appJSON(a catalog.App) map[string]any {
	return map[string]any{"name": a.Name, "org": a.Org, "network": a.Network, "network_id": a.NetworkID, "when_none_healthy": a.WhenNoneHealthy}
}

// machineJSON is the SPEC §7 machine object.
func machineJSON(m catalog.Machine) map[string]any {
	services := []string{}
	for _, s := range m.Services {
		services = append(services, fmt.Sprintf("%s:%s:%d", s.Name, s.Proto, s.Port))
	}
	md := m.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return map[string]any{
		"id": m.ID, "app": m.App, "org": m.Org, "network": m.Network, "region": m.Region, "host": m.Host,
		"address": m.Address.String(), "state": m.State, "process_group": m.ProcessGroup,
		"metadata": md, "services": services, "netns": m.Netns, "created_at": m.CreatedAt,
		"source": machineSource(m),
		"health": m.HealthOrPassing(), "checks": checksJSON(m.Checks),
	}
}

// machineSource is m's source; machines recorded before sources were kept were
// made through the API (by the CLI or not: nobody said).
func machineSource(m catalog.Machine) string {
	if m.MachineAttrs == nil || m.Source == "" {
		return catalog.SourceAPI
	}
	return m.Source
}

func machinesCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "machines",
		Usage: "create, list, show, start, stop and destroy machines",
		Description: `Examples:
  dogwood machines create --app web --service http:tcp:8080
  dogwood machines list --app web
  dogwood machines show 3f9c2a1b7d0e44
  dogwood machines stop 3f9c2a1b7d0e44`,
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a machine of an app on this agent's host; prints its id and address",
				Description: `Examples:
  dogwood machines create --app web --service http:tcp:8080 --metadata role=primary
  dogwood machines create --app db --process-group worker --netns db-1`,
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "app", Usage: "app `NAME`", Required: true},
					appOrgFlag,
					&cli.StringFlag{Name: "region", Usage: "`REGION`; must match this host's region (checked)"},
					&cli.StringFlag{Name: "process-group", Usage: "process `GROUP`", Value: "app"},
					&cli.StringSliceFlag{Name: "metadata", Usage: "`KEY=VALUE` (repeatable)"},
					&cli.StringSliceFlag{Name: "service", Usage: "`NAME:PROTO:PORT` for SRV lookups (repeatable)"},
					&cli.StringFlag{Name: "netns", Usage: "attach the machine to network namespace `NS` (veth, address, route, resolv.conf)"},
					&cli.BoolFlag{Name: "stopped", Usage: "create it stopped"},
					requestIDFlag,
					jsonObjectFlag,
				}, checkFlags()...), OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					_, err := args(c, 0, 0, "--app APP [flags]")
					if err != nil {
						return err
					}
					spec := schema.MachineSpec{App: c.String("app"), Org: c.String("org"), Region: c.String("region"), ProcessGroup: c.String("process-group"),
						Netns: c.String("netns"), Stopped: c.Bool("stopped")} // source: the client's Via header
					if err := checkInput(schema.ValidApp(spec.App)); err != nil {
						return err
					}
					if spec.Region != "" {
						if err := checkInput(schema.ValidRegion(spec.Region)); err != nil {
							return err
						}
					}
					for _, kv := range c.StringSlice("metadata") {
						k, v, err := schema.ParseMetadata(kv)
						if err != nil {
							return checkInput(err)
						}
						if spec.Metadata == nil {
							spec.Metadata = map[string]string{}
						}
						spec.Metadata[k] = v
					}
					for _, s := range c.StringSlice("service") {
						sv, err := schema.ParseService(s)
						if err != nil {
							return checkInput(err)
						}
						spec.Services = append(spec.Services, sv)
					}
					if spec.Checks, err = parseChecks(c); err != nil {
						return err
					}
					rid, err := requestID(c)
					if err != nil {
						return err
					}
					spec.RequestID = rid
					var m catalog.Machine
					if err := client(c).DoRetry(c.Context, "POST", "/v1/machines", spec, &m); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, machineJSON(m))
					}
					fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.Address)
					return nil
				},
			},
			{
				Name: "list", Usage: "list machines", Flags: []cli.Flag{&cli.StringFlag{Name: "app", Usage: "only this app (`NAME`)"}, &cli.StringFlag{Name: "org", Usage: "only this org (`SLUG`); picks the app's org when the name exists in several"},
					&cli.StringFlag{Name: "source", Usage: "only machines made by `SOURCE`: cli, api or cni (container runtimes)"}, jsonFlag}, OnUsageError: usageHook,
				Description: "Examples:\n  dogwood machines list\n  dogwood machines list --app web --json\n  dogwood machines list --source cni",
				Action: func(c *cli.Context) error {
					if _, err := args(c, 0, 0, "[--app APP] [--json]"); err != nil {
						return err
					}
					if a := c.String("app"); a != "" {
						if err := checkInput(schema.ValidApp(a)); err != nil {
							return err
						}
					}
					src := c.String("source")
					if src != "" && src != catalog.SourceCLI && src != catalog.SourceAPI && src != catalog.SourceCNI {
						return checkInput(fmt.Errorf("invalid --source %q: want cli, api or cni", src))
					}
					var ms []catalog.Machine
					if err := client(c).Do(c.Context, "GET", "/v1/machines?app="+url.QueryEscape(c.String("app"))+"&org="+url.QueryEscape(c.String("org")), nil, &ms); err != nil {
						return err
					}
					if src != "" {
						ms = slices.DeleteFunc(ms, func(m catalog.Machine) bool { return machineSource(m) != src })
					}
					if c.Bool("json") {
						out := make([]map[string]any, 0, len(ms))
						for _, m := range ms {
							out = append(out, machineJSON(m))
						}
						return printJSON(e.stdout, out)
					}
					var rows [][]string
					for _, m := range ms {
						rows = append(rows, machineRow(m))
					}
					table(e.stdout, machineColumns, rows)
					return nil
				},
			},
			machineShowCommand(e),
			machineAction(e, "start", "POST", "/start"),
			machineAction(e, "stop", "POST", "/stop"),
			machineAction(e, "destroy", "DELETE", ""),
		},
	}
}

func machineAction(e *env, name, method, suffix string) *cli.Command {
	return &cli.Command{
		Name: name, Usage: name + " a machine (forwarded to the host that runs it)", ArgsUsage: "ID", OnUsageError: usageHook,
		Description: "Example:\n  dogwood machines " + name + " 3f9c2a1b7d0e44",
		Flags:       []cli.Flag{jsonObjectFlag},
		Action: func(c *cli.Context) error {
			a, err := oneArg(c, "ID", schema.ValidMachineID)
			if err != nil {
				return err
			}
			var m catalog.Machine
			if err := client(c).Do(c.Context, method, "/v1/machines/"+a[0]+suffix, nil, &m); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, machineJSON(m))
			}
			past := map[string]string{"start": "started", "stop": "stopped", "destroy": "destroyed"}[name]
			fmt.Fprintf(e.stdout, "%s %s\n", past, a[0])
			return nil
		},
	}
}

// removeCommand is `… remove NAME` for objects that are removed by name.
func removeCommand(e *env, usage, arg string, valid func(string) error, apiPrefix, noun, example string) *cli.Command {
	return &cli.Command{
		Name: "remove", Usage: usage, ArgsUsage: arg, OnUsageError: usageHook,
		Description: "Example:\n  " + example,
		Action: func(c *cli.Context) error {
			a, err := oneArg(c, arg, valid)
			if err != nil {
				return err
			}
			path := apiPrefix + url.PathEscape(a[0])
			if o := c.String("org"); o != "" {
				path += "?org=" + url.QueryEscape(o)
			}
			if err := client(c).Do(c.Context, "DELETE", path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "removed %s %s\n", noun, a[0])
			return nil
		},
	}
}

// requestIDFlag names a create so that sending it again returns the first result.
var requestIDFlag = &cli.StringFlag{Name: "request-id", Usage: "client `ID` of this create (1-64 of [A-Za-z0-9_-]); a retry with the same id returns the first result. Default: a random id, and the command retries by itself if the agent connection fails"}

// requestID returns --request-id or a fresh random one.
func requestID(c *cli.Context) (string, error) {
	if rid := c.String("request-id"); rid != "" {
		return rid, checkInput(schema.ValidRequestID(rid))
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// appOrgFlag picks the org of an app; needed only when the name exists in several orgs
// (app names are unique within an org).
var appOrgFlag = &cli.StringFlag{Name: "org", Usage: "the app's org (`SLUG`); required when the app name exists in several orgs"}

func withOrgFlag(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, appOrgFlag)
	return cmd
}

// machineShowCommand prints one machine, wherever it runs.
func machineShowCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show one machine: app, host, address, state, services, metadata", ArgsUsage: "ID",
		Description: "Examples:\n  dogwood machines show 3f9c2a1b7d0e44\n  dogwood machines show 3f9c2a1b7d0e44 --json",
		Flags:       []cli.Flag{jsonObjectFlag}, OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := oneArg(c, "ID", schema.ValidMachineID)
			if err != nil {
				return err
			}
			var m catalog.Machine
			if err := client(c).Do(c.Context, "GET", "/v1/machines/"+a[0], nil, &m); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, machineJSON(m))
			}
			var services, md []string
			for _, s := range m.Services {
				services = append(services, fmt.Sprintf("%s:%s:%d", s.Name, s.Proto, s.Port))
			}
			for _, k := range slices.Sorted(maps.Keys(m.Metadata)) {
				md = append(md, k+"="+m.Metadata[k])
			}
			fmt.Fprintf(e.stdout, "id         %s\n", m.ID)
			fmt.Fprintf(e.stdout, "app        %s (org %s, network %s)\n", m.App, m.Org, m.Network)
			fmt.Fprintf(e.stdout, "host       %s (region %s)\n", m.Host, m.Region)
			fmt.Fprintf(e.stdout, "address    %s\n", m.Address)
			fmt.Fprintf(e.stdout, "state      %s\n", m.State)
			fmt.Fprintf(e.stdout, "health     %s\n", m.HealthOrPassing())
			fmt.Fprintf(e.stdout, "checks     %s\n", checksLine(m.Checks))
			fmt.Fprintf(e.stdout, "process    %s\n", m.ProcessGroup)
			fmt.Fprintf(e.stdout, "services   %s\n", orDash(strings.Join(services, " ")))
			fmt.Fprintf(e.stdout, "metadata   %s\n", orDash(strings.Join(md, " ")))
			fmt.Fprintf(e.stdout, "netns      %s\n", orDash(m.Netns))
			fmt.Fprintf(e.stdout, "source     %s\n", machineSource(m))
			fmt.Fprintf(e.stdout, "created    %s\n", m.CreatedAt.Format(time.RFC3339))
			return nil
		},
	}
}

// machineColumns heads `machines list`: ORG beside APP, since two orgs may
// both have an app of one name.
var machineColumns = []string{"ID", "ORG", "APP", "REGION", "HOST", "ADDRESS", "STATE", "HEALTH", "PROCESS"}

func machineRow(m catalog.Machine) []string {
	return []string{m.ID, m.Org, m.App, m.Region, m.Host, m.Address.String(), m.State, m.HealthOrPassing(), m.ProcessGroup}
}

// listAction is what every list command shares: no positional arguments, one GET,
// then the items as JSON (through asJSON when the SPEC's objects differ from the
// API's; nil prints them as they came) or as the table rows gives.
func listAction[T any](e *env, usage string, path func(*cli.Context) string, asJSON func([]T) any, rows func([]T) ([]string, [][]string)) cli.ActionFunc {
	return func(c *cli.Context) error {
		if _, err := args(c, 0, 0, usage); err != nil {
			return err
		}
		var items []T
		if err := client(c).Do(c.Context, "GET", path(c), nil, &items); err != nil {
			return err
		}
		if c.Bool("json") {
			if asJSON != nil {
				return printJSON(e.stdout, asJSON(items))
			}
			return printJSON(e.stdout, items)
		}
		header, body := rows(items)
		table(e.stdout, header, body)
		return nil
	}
}

// orgQuery is a list path filtered by the --org flag (empty: every org).
func orgQuery(path string) func(*cli.Context) string {
	return func(c *cli.Context) string { return path + "?org=" + url.QueryEscape(c.String("org")) }
}
