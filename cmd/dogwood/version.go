package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh/release"
)

// Release builds set these with -ldflags "-X main.version=… -X main.commit=… -X main.date=…"
// (see `make dist`); a plain `go build` from a git checkout leaves them empty and the
// values come from the VCS stamp the go command embeds. They are the only
// package-level variables: the linker can only write to those.
var (
	version string
	commit  string
	date    string
)

// buildInfo says which build this binary is; `dogwood version`, `--version`, the
// dogwood_build_info metric and the agent's first log line all print it.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// readBuildInfo merges the linker-set values with what debug.ReadBuildInfo knows:
// the module version (set when built with `go install …@version`) and the git
// revision, time and dirty flag (set when built inside a checkout).
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = bi.GoVersion
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		var rev, at string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if b.Commit == "" && rev != "" {
			b.Commit = rev
			if dirty {
				b.Commit += "-dirty"
			}
		}
		if b.Date == "" {
			b.Date = at
		}
	}
	b.Version = strings.TrimPrefix(b.Version, "v")
	if b.Version == "" {
		// A plain `go build` without a tag: the release this tree is heading for.
		b.Version = release.Version + "-dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

// shortCommit is the first 12 characters of the revision (plus "-dirty").
func (b buildInfo) shortCommit() string {
	c, dirty := strings.CutSuffix(b.Commit, "-dirty")
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += "-dirty"
	}
	return c
}

// String is the one line `dogwood version` and `dogwood --version` print.
func (b buildInfo) String() string {
	return fmt.Sprintf("dogwood %s (commit %s, built %s, %s %s)", b.Version, b.shortCommit(), b.Date, b.GoVersion, b.Platform)
}

func versionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "version", Usage: "print the version, commit and build date",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON object"}},
		Action: func(c *cli.Context) error {
			if _, err := args(c, 0, 0, "[--json]"); err != nil {
				return err
			}
			b := readBuildInfo()
			if c.Bool("json") {
				return printJSON(e.stdout, b)
			}
			fmt.Fprintln(e.stdout, b.String())
			return nil
		},
	}
}
