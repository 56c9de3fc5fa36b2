package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// parseDuration is time.ParseDuration plus days (d, 24h) and weeks (w, 7d),
// which is how people give expiries: "7d", "1w", "1d12h", "90m".
func parseDuration(s string) (time.Duration, error) {
	in := s
	var total time.Duration
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		num, unit := s[:i], s[i:j]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("invalid duration %q: use a number and a unit, e.g. 90m, 24h, 7d, 2w", in)
		}
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", in)
			}
			day := 24 * time.Hour
			if unit == "w" {
				day *= 7
			}
			d = time.Duration(f * float64(day))
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("invalid duration %q: use a number and a unit, e.g. 90m, 24h, 7d, 2w", in)
			}
		}
		total += d
		s = s[j:]
	}
	if neg {
		total = -total
	}
	return total, nil
}

// expiresFlag is --expires DURATION with days and weeks.
func expiresFlag(usage, def string) *cli.StringFlag {
	return &cli.StringFlag{Name: "expires", Usage: usage, Value: def}
}

// durationArg reads a duration flag given as text; 0 when unset.
func durationArg(c *cli.Context, name string) (time.Duration, error) {
	v := c.String(name)
	if v == "" {
		return 0, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, usagef("--%s: %v", name, err)
	}
	if d <= 0 {
		return 0, usagef("--%s must be positive", name)
	}
	return d, nil
}
