//go:build agent

package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// agentConfigFlag is the agent's --config: a YAML file whose keys are the agent's flag
// names (data-dir: /var/lib/dogwood, join: [198.18.0.2:7946]). A flag given on the
// command line (or its environment variable) wins over the file; the file wins over
// the flag's default.
var agentConfigFlag = &cli.StringFlag{Name: "config", Usage: "YAML file with agent settings, keys named like the flags (flags given on the command line win)"}

// withConfigFile adds --config to a command's flags; loadConfigFileFor fills
// the others from it.
func withConfigFile(flags []cli.Flag) []cli.Flag {
	return append([]cli.Flag{agentConfigFlag}, flags...)
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
	return applyConfig(c, keys)
}

// applyConfig sets each flag the file names and the command line did not
// (urfave's altsrc did this, at the price of a TOML parser linked into every
// CLI call). Values were checked by checkConfigTypes.
func applyConfig(c *cli.Context, keys map[string]any) error {
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !hasFlag(c.Command.Flags, n) || c.IsSet(n) {
			continue // another command's setting (agent cleanup), or given on the command line
		}
		vals := []string{fmt.Sprint(keys[n])}
		if l, ok := keys[n].([]any); ok {
			vals = vals[:0]
			for _, v := range l {
				vals = append(vals, fmt.Sprint(v))
			}
		}
		for _, v := range vals {
			if err := c.Set(n, v); err != nil {
				return usagef("--config: %s: %v", n, err)
			}
		}
	}
	return nil
}

func hasFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, fn := range f.Names() {
			if fn == name {
				return true
			}
		}
	}
	return false
}

// checkConfigTypes says in plain words which setting has a value of the wrong
// kind, before any flag parsing would (urfave's altsrc, used before, named Go types: "Expected
// '[]interface{}' but actual is 'string'").
func checkConfigTypes(keys map[string]any, flags []cli.Flag) error {
	kind := map[string]string{}
	for _, f := range flags {
		var k string
		switch f.(type) {
		case *cli.StringFlag:
			k = "text"
		case *cli.StringSliceFlag:
			k = "list"
		case *cli.BoolFlag:
			k = "bool"
		case *cli.IntFlag:
			k = "number"
		case *cli.DurationFlag:
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
