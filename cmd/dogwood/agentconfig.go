package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

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
func loadConfigFile(c *cli.Context) error { return loadConfigFileFor(c, c.Command.Flags) }

// loadConfigFileFor is loadConfigFile for a command that reads the agent's
// config file but has only some of its flags (agent cleanup): keys are checked
// against all of valid, and the command's own flags are filled in.
func loadConfigFileFor(c *cli.Context, valid []cli.Flag) error {
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
	for _, f := range valid {
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
	if err := checkConfigTypes(keys, valid); err != nil {
		return usagef("--config %s: %v", path, err)
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

// checkConfigTypes says in plain words which setting has a value of the wrong
// kind, before altsrc would (its messages name Go types: "Expected
// '[]interface{}' but actual is 'string'").
func checkConfigTypes(keys map[string]any, flags []cli.Flag) error {
	kind := map[string]string{}
	for _, f := range flags {
		var k string
		switch f.(type) {
		case *altsrc.StringFlag, *cli.StringFlag:
			k = "text"
		case *altsrc.StringSliceFlag, *cli.StringSliceFlag:
			k = "list"
		case *altsrc.BoolFlag, *cli.BoolFlag:
			k = "bool"
		case *altsrc.IntFlag, *cli.IntFlag:
			k = "number"
		case *altsrc.DurationFlag, *cli.DurationFlag:
			k = "duration"
		}
		for _, n := range f.Names() {
			kind[n] = k
		}
	}
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []string
	for _, n := range names {
		if msg := configValueProblem(n, kind[n], keys[n]); msg != "" {
			errs = append(errs, msg)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// configValueProblem describes what is wrong with one setting's value, or "".
func configValueProblem(name, kind string, v any) string {
	got := describeYAML(v)
	switch kind {
	case "text":
		switch v.(type) {
		case string:
			return ""
		case int, float64, bool:
			return fmt.Sprintf("%s: want text, got %s (put it in quotes: %s: \"%v\")", name, got, name, v)
		}
		return fmt.Sprintf("%s: want text, got %s", name, got)
	case "list":
		l, ok := v.([]any)
		if !ok {
			if s, isText := v.(string); isText {
				return fmt.Sprintf("%s: want a list, got %s (write %s: [%s])", name, got, name, s)
			}
			return fmt.Sprintf("%s: want a list of text, e.g. %s: [a, b], got %s", name, name, got)
		}
		for i, e := range l {
			if _, ok := e.(string); !ok {
				return fmt.Sprintf("%s: item %d: want text, got %s (put it in quotes)", name, i+1, describeYAML(e))
			}
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("%s: want true or false, got %s", name, got)
		}
	case "number":
		if _, ok := v.(int); !ok {
			return fmt.Sprintf("%s: want a whole number, got %s", name, got)
		}
	case "duration":
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("%s: want a duration with its unit (%s: 72h, 30m, 10s), got %s", name, name, got)
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Sprintf("%s: want a duration with its unit (72h, 30m, 10s), got %q", name, s)
		}
	}
	return ""
}

// describeYAML names a decoded YAML value the way its author wrote it.
func describeYAML(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("the text %q", v)
	case bool:
		return fmt.Sprintf("%v (a true/false value)", v)
	case int, float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping (key: value pairs)"
	}
	return fmt.Sprintf("%v", v)
}
