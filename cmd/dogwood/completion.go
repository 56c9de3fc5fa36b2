package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/apiclient"
)

// completeCommand is the hidden word every shell's completion script calls:
// `dogwood __complete WORD... CURRENT` prints one candidate a line for
// CURRENT. Commands and flags come from the command tree, so completion never
// goes stale; names of orgs, apps, machines and members come from the local
// agent (briefly: a shell waits for it).
const completeCommand = "__complete"

func completionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "completion", Usage: "print a shell completion script (bash, zsh or fish)", ArgsUsage: "bash|zsh|fish",
		Description: `The .deb installs all three where the shells look for them
(bash-completion, zsh's vendor-completions, fish's vendor_completions.d).
Commands and --flags are completed from the binary itself; org, app, machine
and member names from the local agent.

Examples:
  source <(dogwood completion bash)
  dogwood completion zsh > "${fpath[1]}/_dogwood"
  dogwood completion fish > ~/.config/fish/completions/dogwood.fish`,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "bash|zsh|fish")
			if err != nil {
				return err
			}
			script, ok := completionScripts[a[0]]
			if !ok {
				return usagef("unknown shell %q: bash, zsh or fish", a[0])
			}
			fmt.Fprint(e.stdout, script)
			return nil
		},
	}
}

var completionScripts = map[string]string{
	"bash": `# bash completion for dogwood
_dogwood_complete() {
  local IFS=$'\n'
  COMPREPLY=( $(dogwood __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) )
  if [ ${#COMPREPLY[@]} -eq 0 ]; then compopt -o default 2>/dev/null; fi
}
complete -F _dogwood_complete dogwood
`,
	"zsh": `#compdef dogwood
# zsh completion for dogwood
_dogwood() {
  local -a opts
  opts=("${(@f)$(dogwood __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if (( ${#opts} )) && [[ -n ${opts[1]} ]]; then
    compadd -Q -- "${opts[@]}"
  else
    _files
  fi
}
if [ "$funcstack[1]" = "_dogwood" ]; then _dogwood "$@"; else compdef _dogwood dogwood; fi
`,
	"fish": `# fish completion for dogwood
function __dogwood_complete
    set -l words (commandline -opc) (commandline -ct)
    dogwood __complete $words[2..-1] 2>/dev/null
end
complete -c dogwood -f -a '(__dogwood_complete)'
`,
}

// nameSource lists names of a kind ("org", "app", "machine", "member") for
// completion; it fails quietly (a shell shows nothing).
type nameSource func(kind string) []string

// completeWords returns the candidates for the last of words (the word being
// typed, maybe empty), given the words before it, as the command tree reads them.
func completeWords(app *cli.App, words []string, names nameSource) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	var path []*cli.Command
	cmds, flags := app.Commands, app.Flags
	positional := 0
	takesValue := func(name string) cli.Flag {
		for _, fs := range [][]cli.Flag{flags, app.Flags} {
			for _, f := range fs {
				for _, n := range f.Names() {
					if n == name {
						if _, isBool := f.(*cli.BoolFlag); !isBool {
							return f
						}
					}
				}
			}
		}
		return nil
	}
	var valueOf string // the flag whose value cur is
	for i := 0; i < len(before); i++ {
		w := before[i]
		if strings.HasPrefix(w, "-") {
			name := strings.TrimLeft(w, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if takesValue(name) != nil {
				if i == len(before)-1 {
					valueOf = name
				}
				i++
			}
			continue
		}
		if sub := findCommand(cmds, w); sub != nil {
			path = append(path, sub)
			cmds, flags = sub.Subcommands, sub.Flags
			positional = 0
			continue
		}
		positional++
	}
	var out []string
	switch {
	case valueOf != "":
		if kind := flagValueKind[valueOf]; kind != "" {
			out = names(kind)
		}
	case strings.HasPrefix(cur, "-"):
		for _, fs := range [][]cli.Flag{flags, app.Flags} {
			for _, f := range fs {
				if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
					continue
				}
				for _, n := range f.Names() {
					if len(n) > 1 {
						out = append(out, "--"+n)
					}
				}
			}
		}
		out = append(out, "--help")
	case len(cmds) > 0:
		for _, c := range cmds {
			if !c.Hidden && c.Name != "help" {
				out = append(out, c.Name)
			}
		}
	case len(path) > 0:
		if kind := argKind(path, positional); kind != "" {
			out = names(kind)
		}
	}
	var keep []string
	seen := map[string]bool{}
	for _, o := range out {
		if strings.HasPrefix(o, cur) && !seen[o] {
			seen[o] = true
			keep = append(keep, o)
		}
	}
	sort.Strings(keep)
	return keep
}

// flagValueKind: flags whose values name catalog objects.
var flagValueKind = map[string]string{"org": "org", "app": "app"}

// argKind is what the positional argument at index i of the command at the end
// of path names, from its ArgsUsage ("[ORG] NAME", "ID"): "" when it is a new
// name or free text.
func argKind(path []*cli.Command, i int) string {
	cmd := path[len(path)-1]
	if cmd.Name == "create" || cmd.Name == "invite" || cmd.Name == "join" {
		return ""
	}
	words := strings.Fields(cmd.ArgsUsage)
	if i >= len(words) {
		return ""
	}
	w := strings.Trim(words[i], "[]")
	group := ""
	if len(path) > 1 {
		group = path[len(path)-2].Name
	}
	switch {
	case w == "ORG" || w == "SLUG":
		return "org"
	case w == "ID":
		return "machine"
	case w == "APP" || (w == "NAME" && group == "apps"):
		return "app"
	case w == "NAME" && group == "members":
		return "member"
	}
	return ""
}

// nameQueries: where the agent lists names of a kind, and which field.
var nameQueries = map[string][2]string{
	"org": {"/v1/orgs", "slug"}, "app": {"/v1/apps", "name"},
	"machine": {"/v1/machines", "id"}, "member": {"/v1/members", "name"},
}

// agentNames asks the agent at addr for names of a kind, within a short time.
func agentNames(addr string) nameSource {
	return func(kind string) []string {
		cl := apiclient.NewClient(addr)
		if strings.Contains(addr, "://") {
			return nil // a remote agent wants a token and a pin: not for a TAB press
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		var rows []map[string]any
		q, ok := nameQueries[kind]
		if !ok || cl.Do(ctx, "GET", q[0], nil, &rows) != nil {
			return nil
		}
		field := q[1]
		var out []string
		for _, r := range rows {
			if s, ok := r[field].(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
}

// runComplete serves `dogwood __complete WORDS...`.
func runComplete(app *cli.App, words []string, stdout io.Writer) int {
	addr := os.Getenv("DOGWOOD_AGENT")
	for i, w := range words {
		if w == "--agent" && i+1 < len(words)-1 {
			addr = words[i+1]
		} else if strings.HasPrefix(w, "--agent=") {
			addr = strings.TrimPrefix(w, "--agent=")
		}
	}
	if addr == "" {
		addr = "/run/dogwood/api.sock"
	}
	for _, c := range completeWords(app, words, agentNames(addr)) {
		fmt.Fprintln(stdout, c)
	}
	return 0
}
