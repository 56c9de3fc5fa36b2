package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// agentConfigFlag is the agent's --config: a YAML file whose keys are the agent's flag
// names (data-dir: /var/lib/dogwood, join: [198.18.0.2:7946]). A flag given on the
// command line wins over the file; the file wins over the flag's default.
var agentConfigFlag = &cli.StringFlag{Name: "config", Usage: "YAML file with agent settings, keys named like the flags (flags given on the command line win)"}

// withConfigFile wraps flags so urfave/cli's altsrc can fill them from the config
// file. Only flag types the agent uses are wrapped; adding another type fails loudly
// here rather than being silently ignored in the file.
func withConfigFile(flags []cli.Flag) []cli.Flag {
	out := []cli.Flag{agentConfigFlag}
	for _, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			out = append(out, altsrc.NewStringFlag(f))
		case *cli.StringSliceFlag:
			out = append(out, altsrc.NewStringSliceFlag(f))
		case *cli.BoolFlag:
			out = append(out, altsrc.NewBoolFlag(f))
		case *cli.IntFlag:
			out = append(out, altsrc.NewIntFlag(f))
		case *cli.DurationFlag:
			out = append(out, altsrc.NewDurationFlag(f))
		default:
			panic(fmt.Sprintf("agent flag %v: no config-file support for %T", f.Names(), f))
		}
	}
	return out
}

// loadConfigFile applies --config to the command's flags. Keys that name no flag
// are refused: a misspelt key would otherwise be ignored and the agent would run
// with the default, which is how a wrong data dir or a missing join goes unnoticed.
func loadConfigFile(c *cli.Context) error {
	path := c.String(agentConfigFlag.Name)
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return usagef("--config: %v", err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(b, &keys); err != nil {
		return usagef("--config %s: %v", path, err)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	var unknown []string
	for k := range keys {
		if !known[k] || k == agentConfigFlag.Name || k == "help" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return usagef("--config %s: unknown setting(s) %s; the keys are the flag names of 'dogwood agent --help'", path, strings.Join(unknown, ", "))
	}
	src, err := altsrc.NewYamlSourceFromFile(path)
	if err != nil {
		return usagef("--config %s: %v", path, err)
	}
	if err := altsrc.ApplyInputSourceValues(c, src, c.Command.Flags); err != nil {
		return usagef("--config %s: %v", path, err)
	}
	return nil
}
