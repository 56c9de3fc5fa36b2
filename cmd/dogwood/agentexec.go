//go:build !agent

package main

import "github.com/urfave/cli/v2"

// The light binary's stand-ins for the commands that run in dogwood-agent
// (delegate.go): each replaces this process with dogwood-agent and the same
// arguments, so `dogwood agent --help` shows the agent's flags.

// agentLinked: this build is the light dogwood, without the agent's side.
const agentLinked = false

func agentCommand(e *env) *cli.Command   { return delegated(e, "agent", agentUsage) }
func digCommand(e *env) *cli.Command     { return delegated(e, "dig", digUsage) }
func pingCommand(e *env) *cli.Command    { return delegated(e, "ping", pingUsage) }
func proxyCommand(e *env) *cli.Command   { return delegated(e, "proxy", proxyUsage) }
func backupCommand(e *env) *cli.Command  { return delegated(e, "backup", backupUsage) }
func restoreCommand(e *env) *cli.Command { return delegated(e, "restore", restoreUsage) }

func delegated(e *env, name, usage string) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, SkipFlagParsing: true, HideHelp: true,
		Action: func(*cli.Context) error { return execAgent(e.args) },
	}
}
