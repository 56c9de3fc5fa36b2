package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// `dogwood doctor` asks the local agent to check itself and its host: the agent
// knows its settings, listeners, members and WireGuard peers, so every check runs
// there (GET /v1/doctor on the unix socket) and the CLI prints the list. Each
// check says pass, warn or fail and, unless it passed, the next step.

type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // pass, warn, fail
	Detail string `json:"detail"`
	Next   string `json:"next,omitempty"`
}

const (
	checkPass = "pass"
	checkWarn = "warn"
	checkFail = "fail"
)

func doctorCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check this host and its agent: pass/warn/fail with the next step for each",
		Description: `Checks the gossip key file's mode, the data dir, the listeners, every member's
gossip port, the WireGuard interface and a fresh handshake with every live host, the
DNS listeners, DNS as a machine on this host asks it and, on a gateway, as a
developer's peer does (through a test peer that doctor removes), the upstream
resolvers, clock skew against the other members, the nftables table and the MTU on
the underlay path. Exit status 1 if any check fails.

Example:
  dogwood doctor
  dogwood doctor --json | jq '.[] | select(.status != "pass")'`,
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array of checks"}},
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			if _, err := args(c, 0, 0, "[--json]"); err != nil {
				return err
			}
			var checks []doctorCheck
			if err := client(c).Do(c.Context, "GET", "/v1/doctor", nil, &checks); err != nil {
				checks = []doctorCheck{{Name: "agent", Status: checkFail,
					Detail: fmt.Sprintf("cannot ask the agent at %s: %v", c.String("agent"), err),
					Next:   "is it running? systemctl status dogwood; journalctl -u dogwood -n 50 (or pass --agent PATH)"}}
			}
			failed := 0
			for _, ch := range checks {
				if ch.Status == checkFail {
					failed++
				}
			}
			if c.Bool("json") {
				if err := printJSON(e.stdout, checks); err != nil {
					return err
				}
			} else {
				printDoctor(e, checks)
			}
			if failed > 0 {
				return fmt.Errorf("doctor: %d of %d checks failed", failed, len(checks))
			}
			return nil
		},
	}
}

func printDoctor(e *env, checks []doctorCheck) {
	mark := map[string]string{checkPass: "PASS", checkWarn: "WARN", checkFail: "FAIL"}
	counts := map[string]int{}
	w := 0
	for _, c := range checks {
		w = max(w, len(c.Name))
	}
	for _, c := range checks {
		counts[c.Status]++
		fmt.Fprintf(e.stdout, "%-4s  %-*s  %s\n", mark[c.Status], w, c.Name, c.Detail)
		if c.Next != "" && c.Status != checkPass {
			fmt.Fprintf(e.stdout, "      %-*s  → %s\n", w, "", c.Next)
		}
	}
	fmt.Fprintf(e.stdout, "%d passed, %d warnings, %d failed\n", counts[checkPass], counts[checkWarn], counts[checkFail])
}
