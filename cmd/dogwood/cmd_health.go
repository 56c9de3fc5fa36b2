package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/schema"
)

// checkFlags are `machines create`'s health check flags.
func checkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "check", Usage: "health check `tcp:PORT|http:PORT[/PATH]` run by this host into the machine (repeatable; http passes on 2xx/3xx)"},
		&cli.DurationFlag{Name: "check-interval", Usage: "time between runs of each check", Value: catalog.DefaultCheckInterval},
		&cli.DurationFlag{Name: "check-timeout", Usage: "time a check may take", Value: catalog.DefaultCheckTimeout},
		&cli.IntFlag{Name: "check-rise", Usage: "passes in a row that make a critical machine passing", Value: catalog.DefaultCheckRise},
		&cli.IntFlag{Name: "check-fall", Usage: "failures in a row that make a passing machine critical", Value: catalog.DefaultCheckFall},
	}
}

// parseChecks turns the check flags into the API's checks.
func parseChecks(c *cli.Context) ([]catalog.Check, error) {
	var out []catalog.Check
	for _, s := range c.StringSlice("check") {
		ch, err := catalog.ParseCheck(s)
		if err != nil {
			return nil, checkInput(err)
		}
		ch.Interval, ch.Timeout = catalog.Duration(c.Duration("check-interval")), catalog.Duration(c.Duration("check-timeout"))
		ch.Rise, ch.Fall = c.Int("check-rise"), c.Int("check-fall")
		if ch.Rise < 1 || ch.Fall < 1 {
			return nil, checkInput(fmt.Errorf("--check-rise and --check-fall must be at least 1"))
		}
		if err := ch.Validate(); err != nil {
			return nil, checkInput(err)
		}
		out = append(out, ch)
	}
	if len(out) == 0 {
		for _, f := range []string{"check-interval", "check-timeout", "check-rise", "check-fall"} {
			if c.IsSet(f) {
				return nil, checkInput(fmt.Errorf("--%s needs at least one --check", f))
			}
		}
	}
	return out, nil
}

// checksJSON is the SPEC §7 checks array.
func checksJSON(cs []catalog.Check) []map[string]any {
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		iv, to, rise, fall := c.Every()
		var at any
		if c.CheckedAt != nil {
			at = c.CheckedAt.UTC().Format(time.RFC3339)
		}
		out = append(out, map[string]any{"kind": c.Kind, "target": c.Target, "status": orUnknown(c.Status), "output": c.Output,
			"checked_at": at, "interval": iv.String(), "timeout": to.String(), "rise": rise, "fall": fall})
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return catalog.HealthUnknown
	}
	return s
}

// checksLine is `machines show`'s line for the checks.
func checksLine(cs []catalog.Check) string {
	var parts []string
	for _, c := range cs {
		p := c.Spec() + " " + orUnknown(c.Status)
		if c.Output != "" {
			p += " (" + c.Output + ")"
		}
		parts = append(parts, p)
	}
	return orDash(strings.Join(parts, ", "))
}

// whenNoneFlag is apps create/update's fail-open choice.
var whenNoneFlag = &cli.StringFlag{Name: "when-none-healthy", Usage: "what DNS answers when no machine of a name passes its checks: `all` (fail open) or none"}

func checkWhenNone(c *cli.Context) error {
	switch v := c.String("when-none-healthy"); v {
	case "", catalog.WhenNoneAll, catalog.WhenNoneNone:
		return nil
	default:
		return checkInput(fmt.Errorf("invalid --when-none-healthy %q: use all or none", v))
	}
}

func appsUpdateCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "update", Usage: "change an app's settings", ArgsUsage: "NAME --when-none-healthy all|none",
		Description: "Example:\n  dogwood apps update web --when-none-healthy none",
		Flags:       []cli.Flag{appOrgFlag, whenNoneFlag, jsonObjectFlag}, OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := oneArg(c, "NAME --when-none-healthy all|none", schema.ValidApp)
			if err != nil {
				return err
			}
			if !c.IsSet("when-none-healthy") {
				return checkInput(fmt.Errorf("nothing to update: give --when-none-healthy all|none"))
			}
			if err := checkWhenNone(c); err != nil {
				return err
			}
			path := "/v1/apps/" + url.PathEscape(a[0])
			if o := c.String("org"); o != "" {
				path += "?org=" + url.QueryEscape(o)
			}
			var app catalog.App
			if err := client(c).Do(c.Context, "PATCH", path, schema.AppSettings{WhenNoneHealthy: c.String("when-none-healthy")}, &app); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, appJSON(app))
			}
			fmt.Fprintf(e.stdout, "updated app %s: when-none-healthy %s\n", app.Name, app.WhenNoneHealthy)
			return nil
		},
	}
}
