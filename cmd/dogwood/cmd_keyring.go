package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// keyringRequest is one keyring operation: list, install, use or remove.
type keyringRequest struct {
	Op  string `json:"op"`
	Key string `json:"key,omitempty"` // base64
}

// keyringHost is one host's answer.
type keyringHost struct {
	Host    string   `json:"host"`
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	Primary string   `json:"primary,omitempty"`
	Keys    []string `json:"keys,omitempty"`
}

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
  OLD=$(dogwood keyring list | awk 'NR == 2 {print $1}')
  NEW=$(dogwood keygen)
  dogwood keyring install "$NEW"   # every host now accepts NEW
  dogwood keyring use "$NEW"       # every host now encrypts with NEW
  dogwood keyring remove "$OLD"    # OLD is no longer accepted
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
	switch {
	case req.Op == "list":
		rows := keyRows(hosts)
		if c.Bool("json") {
			if err := printJSON(e.stdout, rows); err != nil {
				return err
			}
		} else {
			printKeyRows(e, rows)
		}
		for _, h := range hosts {
			if !h.OK {
				fmt.Fprintf(e.stderr, "%s: %s\n", h.Host, h.Error)
			}
		}
	case c.Bool("json"):
		if err := printJSON(e.stdout, hosts); err != nil {
			return err
		}
	default:
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

// keyRow is one key of `keyring list`, in text and JSON alike: how many of
// the hosts that answered have it and encrypt with it, and which.
type keyRow struct {
	Key         string   `json:"key"`
	Installed   int      `json:"installed"`
	Primary     int      `json:"primary"`
	Hosts       int      `json:"hosts"`
	InstalledOn []string `json:"installed_on"`
	PrimaryOn   []string `json:"primary_on"`
}

// keyRows folds per-host answers into one row per key, as `consul keyring
// -list` does: the key most hosts encrypt with first. Hosts that did not
// answer are left out (the caller reports them).
func keyRows(hosts []keyringHost) []keyRow {
	byKey := map[string]*keyRow{}
	ok := 0
	for _, h := range hosts {
		if !h.OK {
			continue
		}
		ok++
		for _, k := range h.Keys {
			r := byKey[k]
			if r == nil {
				r = &keyRow{Key: k, InstalledOn: []string{}, PrimaryOn: []string{}}
				byKey[k] = r
			}
			r.Installed++
			r.InstalledOn = append(r.InstalledOn, h.Host)
			if k == h.Primary {
				r.Primary++
				r.PrimaryOn = append(r.PrimaryOn, h.Host)
			}
		}
	}
	rows := make([]keyRow, 0, len(byKey))
	for _, r := range byKey {
		r.Hosts = ok
		sort.Strings(r.InstalledOn)
		sort.Strings(r.PrimaryOn)
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].Primary > rows[j].Primary || rows[i].Primary == rows[j].Primary && rows[i].Key < rows[j].Key
	})
	return rows
}

func printKeyRows(e *env, rows []keyRow) {
	var t [][]string
	for _, r := range rows {
		t = append(t, []string{r.Key, fmt.Sprintf("%d/%d", r.Installed, r.Hosts), fmt.Sprintf("%d/%d", r.Primary, r.Hosts)})
	}
	table(e.stdout, []string{"KEY", "INSTALLED", "PRIMARY"}, t)
}

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:8] + "…"
	}
	return orDash(k)
}
