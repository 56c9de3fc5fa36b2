package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/apiclient"
)

// usageError marks bad usage or invalid input: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitCode maps an error to SPEC §7's exit status: 2 for bad usage or invalid input
// (including the agent's 400 answers), 1 for operations that failed.
func exitCode(err error) int {
	var ue *usageError
	var ae *apiclient.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ae) && ae.Status == 400:
		return 2
	}
	return 1
}

type env struct {
	// args are the command line as given (args[0] the program): a command that
	// runs in dogwood-agent passes them on unchanged.
	args           []string
	stdin          io.Reader
	stdout, stderr io.Writer
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{args: args, stdin: stdin, stdout: stdout, stderr: stderr}
	app := newApp(e)
	if len(args) > 1 && args[1] == completeCommand {
		if !agentLinked && isDelegated(completedCommand(app, args[2:])) {
			// Its flags are dogwood-agent's; without it, offer nothing.
			execAgent(args)
			return 0
		}
		return runComplete(app, args[2:], stdout)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err != nil {
		fmt.Fprintf(stderr, "dogwood: %s\n", err)
	}
	return exitCode(err)
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:  "dogwood",
		Usage: "private IPv6 networking for a fleet of hosts (6PN), WireGuard and .internal DNS",
		Description: `Every host runs "dogwood agent". The agents gossip a catalog of orgs, apps,
machines and peers, give every machine an address in fdaa::/16, connect hosts with
WireGuard and answer .internal DNS. Everything else in this CLI talks to the local
agent through its API socket (--agent, $DOGWOOD_AGENT, default /run/dogwood/api.sock).

Examples:
  dogwood keygen > /etc/dogwood/gossip.key
  dogwood agent --name host1 --region ord --gossip-addr 198.18.0.1:7946 --gossip-key-file /etc/dogwood/gossip.key
  dogwood orgs create acme
  dogwood apps create web --org acme
  dogwood machines create --app web --service http:tcp:8080
  dogwood wireguard create acme ord laptop laptop.conf
  dogwood dig --org acme web.internal`,
		// urfave's own --version prints "NAME version X"; ours prints exactly what
		// `dogwood version` does.
		HideVersion:          true,
		EnableBashCompletion: true,
		HideHelpCommand:      false,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		Reader:               e.stdin,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "agent", Usage: "the agent's API socket `PATH`, or https://HOST:PORT of its TLS API (accepted anywhere on the command line)", EnvVars: []string{"DOGWOOD_AGENT"}, Value: "/run/dogwood/api.sock"},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` with the bearer token of a remote agent (--agent https://…; or set DOGWOOD_TOKEN)", EnvVars: []string{"DOGWOOD_TOKEN_FILE"}},
			&cli.StringFlag{Name: "agent-fingerprint", Usage: "pin the remote agent's certificate to `FINGERPRINT` (sha256:… from dogwood status on its host)", EnvVars: []string{"DOGWOOD_AGENT_FINGERPRINT"}},
			&cli.StringFlag{Name: "agent-ca", Usage: "CA certificate `FILE` (PEM) that signed the remote agent's certificate", EnvVars: []string{"DOGWOOD_AGENT_CA"}},
			&cli.BoolFlag{Name: "version", Usage: "print the version (same as `dogwood version`)"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return &usageError{err.Error()} },
		// `dogwood help NAME` for a name that does not exist.
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(e.stderr, "dogwood: %s\n", unknownCommand("", c.App.Commands, name))
			cli.OsExiter(2)
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				fmt.Fprintln(e.stdout, readBuildInfo().String())
				return nil
			}
			if c.Args().Len() == 0 {
				return cli.ShowAppHelp(c)
			}
			return unknownCommand("", c.App.Commands, c.Args().First())
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() prints and maps errors
		Commands: []*cli.Command{
			agentCommand(e),
			keygenCommand(e),
			membersCommand(e),
			keyringCommand(e),
			doctorCommand(e),
			statusCommand(e),
			orgsCommand(e),
			networksCommand(e),
			appsCommand(e),
			machinesCommand(e),
			wireguardCommand(e),
			dnsCommand(e),
			digCommand(e),
			pingCommand(e),
			proxyCommand(e),
			versionCommand(e),
			backupCommand(e),
			restoreCommand(e),
			completionCommand(e),
		},
	}
	checkRequiredFlags(app.Commands)
	routeUnknownSubcommands(app.Commands, "")
	return app
}

// checkRequiredFlags replaces urfave's handling of Required flags with our own check.
// urfave answers a missing required flag by running its help action on the
// positional arguments ("dogwood apps create web" printed `unknown command "web"`)
// and returns an error that is not a usage error (exit 1 instead of SPEC §7's 2).
func checkRequiredFlags(cmds []*cli.Command) {
	for _, c := range cmds {
		checkRequiredFlags(c.Subcommands)
		var names []string
		for _, f := range c.Flags {
			if sf, ok := f.(*cli.StringFlag); ok && sf.Required {
				sf.Required = false
				names = append(names, sf.Name)
			}
		}
		if len(names) == 0 {
			continue
		}
		prev := c.Before
		c.Before = func(cc *cli.Context) error {
			for _, n := range names {
				if !cc.IsSet(n) {
					return usagef("missing required flag --%s; see 'dogwood %s --help'", n, commandPath(cc))
				}
			}
			if prev != nil {
				return prev(cc)
			}
			return nil
		}
	}
}

// commandPath is the command's full name ("orgs create"); urfave's FullName drops
// the parent of a subcommand.
func commandPath(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name {
			names = append([]string{x.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

// subcommand usage errors: urfave's OnUsageError is per command.
func usageHook(_ *cli.Context, err error, _ bool) error { return &usageError{err.Error()} }

func client(c *cli.Context) *apiclient.Client {
	agent := c.String("agent")
	if !strings.Contains(agent, "://") {
		cl := apiclient.NewClient(agent)
		cl.Via = apiclient.ViaCLI
		return cl
	}
	cl, err := remoteClient(agent, c.String("token-file"), c.String("agent-fingerprint"), c.String("agent-ca"))
	if err != nil {
		return apiclient.Failing(err)
	}
	cl.Via = apiclient.ViaCLI
	return cl
}

// remoteClient is the client for --agent https://HOST:PORT: the token comes from
// --token-file or DOGWOOD_TOKEN, the certificate check from --agent-fingerprint or
// --agent-ca (else the system's roots).
func remoteClient(agent, tokenFile, fingerprint, caFile string) (*apiclient.Client, error) {
	tok := os.Getenv("DOGWOOD_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if fingerprint != "" && caFile != "" {
		return nil, usagef("--agent-fingerprint and --agent-ca are alternatives: give one")
	}
	tlsCfg, err := apiclient.ClientTLS(fingerprint, caFile)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	cl, err := apiclient.NewRemoteClient(agent, tok, tlsCfg)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	return cl, nil
}

// args checks the positional argument count.
func args(c *cli.Context, min, max int, usage string) ([]string, error) {
	a := c.Args().Slice()
	if max >= 0 && len(a) > max && len(c.Command.Subcommands) > 0 {
		// `dogwood members rmove NAME`: a mistyped subcommand, not an argument.
		return nil, unknownCommand(commandPath(c), c.Command.Subcommands, a[0])
	}
	if len(a) < min || (max >= 0 && len(a) > max) {
		return nil, usagef("usage: dogwood %s %s", commandPath(c), usage)
	}
	return a, nil
}

// paddedArgs takes up to max optional positional arguments, the missing ones
// as "", so a command can index them all.
func paddedArgs(c *cli.Context, max int, usage string) ([]string, error) {
	a, err := args(c, 0, max, usage)
	if err != nil {
		return nil, err
	}
	for len(a) < max {
		a = append(a, "")
	}
	return a, nil
}

// oneArg takes exactly one positional argument, which valid must accept
// (its error is a usage error).
func oneArg(c *cli.Context, usage string, valid func(string) error) ([]string, error) {
	a, err := args(c, 1, 1, usage)
	if err != nil {
		return nil, err
	}
	if err := checkInput(valid(a[0])); err != nil {
		return nil, err
	}
	return a, nil
}
