package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// suggestCommand returns the visible command closest to name, or "" when none
// is close: a prefix ("mach" → machines), or at most two edits for names of
// four letters or more (one for shorter ones), as git does.
func suggestCommand(cmds []*cli.Command, name string) string {
	best, bestD := "", 3
	if len(name) < 4 {
		bestD = 2
	}
	for _, c := range cmds {
		if c.Hidden || c.Name == "help" {
			continue
		}
		for _, n := range c.Names() {
			if len(name) >= 2 && strings.HasPrefix(n, name) {
				return c.Name
			}
			if d := editDistance(name, n); d < bestD {
				best, bestD = c.Name, d
			}
		}
	}
	return best
}

func commandNames(cmds []*cli.Command) string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}

// unknownCommand is the usage error for a command name that does not exist
// under parent ("" for the top level): with a suggestion when one is close, the
// commands that exist, and the help page to read.
func unknownCommand(parent string, cmds []*cli.Command, name string) error {
	where, help := "", "dogwood --help"
	if parent != "" {
		where, help = fmt.Sprintf(" for 'dogwood %s'", parent), fmt.Sprintf("dogwood %s --help", parent)
	}
	msg := fmt.Sprintf("unknown command %q%s", name, where)
	if s := suggestCommand(cmds, name); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return usagef("%s\ncommands: %s\nsee '%s'", msg, commandNames(cmds), help)
}

// routeUnknownSubcommands gives every command group (a command with
// subcommands and no action of its own) an action that answers an unknown
// subcommand with its own help page and a suggestion; urfave would otherwise
// show the top-level "unknown command" for `dogwood machines lst`. Without
// arguments the group still prints its help.
func routeUnknownSubcommands(cmds []*cli.Command, path string) {
	for _, c := range cmds {
		p := strings.TrimSpace(path + " " + c.Name)
		routeUnknownSubcommands(c.Subcommands, p)
		if len(c.Subcommands) == 0 || c.Action != nil {
			continue
		}
		c.Action = func(cc *cli.Context) error {
			if cc.Args().Len() == 0 {
				return cli.ShowSubcommandHelp(cc)
			}
			return unknownCommand(p, c.Subcommands, cc.Args().First())
		}
	}
}
