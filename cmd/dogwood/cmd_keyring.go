package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

func keyringCommand(e *env) *cli.Command {
	op := func(name, usage, desc string) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "KEY", Description: desc,
			Flags: []cli.Flag{jsonFlag}, OnUsageError: usageHook,
			Action: func(c *cli.Context) error {
				a, err := args(c, 1, 1, "KEY [--json]")
				if err != nil {
					return err
				}
				return keyringRun(c, e, keyringRequest{Op: name, Key: strings.TrimSpace(a[0])})
			},
		}
	}
	return &cli.Command{
		Name:  "keyring",
		Usage: "list, install, use or remove gossip keys on every live host, without restarts",
		Description: `Rotates the gossip key the way Consul's keyring does. Every operation runs on
every live host and reports per host; each host rewrites its --gossip-key-file, so a
restart keeps the result. A host that is down misses the change: fix its key file by
hand (first line encrypts, every line is accepted) before it starts again.

Example (rotation):
  NEW=$(dogwood keygen)
  dogwood keyring install "$NEW"   # every host now accepts NEW
  dogwood keyring use "$NEW"       # every host now encrypts with NEW
  dogwood keyring remove OLDKEY    # OLD is no longer accepted
  dogwood keyring list`,
		OnUsageError: usageHook,
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "show each key, how many hosts have it and on how many it is the primary",
				Description:  "Example:\n  dogwood keyring list --json",
				Flags:        []cli.Flag{jsonFlag},
				OnUsageError: usageHook,
				Action: func(c *cli.Context) error {
					if _, err := args(c, 0, 0, "[--json]"); err != nil {
						return err
					}
					return keyringRun(c, e, keyringRequest{Op: "list"})
				},
			},
			op("install", "add a key every host accepts", "Example:\n  dogwood keyring install \"$(dogwood keygen)\""),
			op("use", "make an installed key the one every host encrypts with", "Example:\n  dogwood keyring use KEY"),
			op("remove", "remove a key from every host (refused while a host encrypts with it)", "Example:\n  dogwood keyring remove KEY"),
		},
	}
}

func keyringRun(c *cli.Context, e *env, req keyringRequest) error {
	var hosts []keyringHost
	if err := client(c).Do(c.Context, "POST", "/v1/keyring", req, &hosts); err != nil {
		return err
	}
	failed := 0
	for _, h := range hosts {
		if !h.OK {
			failed++
		}
	}
	if c.Bool("json") {
		if err := printJSON(e.stdout, hosts); err != nil {
			return err
		}
	} else if req.Op == "list" {
		printKeyList(e, hosts)
	} else {
		var rows [][]string
		for _, h := range hosts {
			res := "ok"
			if !h.OK {
				res = "FAILED: " + h.Error
			}
			rows = append(rows, []string{h.Host, res, shortKey(h.Primary), fmt.Sprint(len(h.Keys))})
		}
		table(e.stdout, []string{"HOST", "RESULT", "PRIMARY", "KEYS"}, rows)
	}
	if failed > 0 {
		return fmt.Errorf("keyring %s failed on %d of %d hosts", req.Op, failed, len(hosts))
	}
	return nil
}

// printKeyList shows each key once, with how many of the answering hosts have it
// and use it, as `consul keyring -list` does; hosts that did not answer follow.
func printKeyList(e *env, hosts []keyringHost) {
	installed, primary := map[string]int{}, map[string]int{}
	ok := 0
	for _, h := range hosts {
		if !h.OK {
			continue
		}
		ok++
		for _, k := range h.Keys {
			installed[k]++
		}
		primary[h.Primary]++
	}
	keys := make([]string, 0, len(installed))
	for k := range installed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return primary[keys[i]] > primary[keys[j]] || primary[keys[i]] == primary[keys[j]] && keys[i] < keys[j]
	})
	var rows [][]string
	for _, k := range keys {
		rows = append(rows, []string{k, fmt.Sprintf("%d/%d", installed[k], ok), fmt.Sprintf("%d/%d", primary[k], ok)})
	}
	table(e.stdout, []string{"KEY", "INSTALLED", "PRIMARY"}, rows)
	for _, h := range hosts {
		if !h.OK {
			fmt.Fprintf(e.stdout, "%s: %s\n", h.Host, h.Error)
		}
	}
}

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:8] + "…"
	}
	return orDash(k)
}
