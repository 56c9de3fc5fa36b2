package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs makes flags position-independent, as SPEC §7 and users of flyctl
// and kubectl expect. urfave/cli v2 stops parsing flags at the first positional
// argument and only knows a command's own flags, so:
//   - a command's flags that follow positional arguments move in front of them
//     (`dogwood apps create web --org acme`);
//   - a global flag (--agent, …) given after the command moves to the front
//     (`dogwood machines stop ID --agent /run/x.sock`), unless the command has a
//     flag of the same name, which then wins.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	var global, out, pos []string
	flags, cmds := app.Flags, app.Commands
	atRoot := true
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			set := &out
			fl := flags
			if _, ok := findFlag(flags, a); !ok && !atRoot {
				if _, ok := findFlag(app.Flags, a); ok {
					set, fl = &global, app.Flags
				}
			}
			*set = append(*set, a)
			if !strings.Contains(a, "=") && takesValue(fl, a) && i+1 < len(args) {
				i++
				*set = append(*set, args[i])
			}
			continue
		}
		if len(pos) == 0 {
			if c := findCommand(cmds, a); c != nil {
				out = append(out, a)
				flags, cmds, atRoot = c.Flags, c.Subcommands, false
				continue
			}
		}
		pos = append(pos, a)
	}
	res := append([]string{args[0]}, global...)
	res = append(res, out...)
	return append(res, pos...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, al := range c.Aliases {
			if al == name {
				return c
			}
		}
	}
	return nil
}

// findFlag finds the flag an argument ("--agent", "-c", "--agent=x") names.
func findFlag(flags []cli.Flag, arg string) (cli.Flag, bool) {
	name := strings.TrimLeft(arg, "-")
	name, _, _ = strings.Cut(name, "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f, true
			}
		}
	}
	return nil, false
}

func takesValue(flags []cli.Flag, arg string) bool {
	f, ok := findFlag(flags, arg)
	if !ok {
		return false
	}
	// Ask the flag: it knows whether it takes a value.
	if tv, ok := f.(interface{ TakesValue() bool }); ok {
		return tv.TakesValue()
	}
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}
