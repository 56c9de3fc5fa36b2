package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine health states (SPEC §4).
const (
	HealthPassing  = "passing"
	HealthCritical = "critical"
	HealthUnknown  = "unknown"
)

// Check kinds.
const (
	CheckTCP  = "tcp"
	CheckHTTP = "http"
)

// Check defaults (SPEC §7: --check-interval, --check-timeout, --check-rise, --check-fall).
const (
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckRise     = 2
	DefaultCheckFall     = 3
)

// Check is one health check of a machine: how it is run and, as of the machine's
// last health transition, its status. Interval, Timeout, Rise and Fall are 0 for the
// defaults.
type Check struct {
	Kind string `json:"kind"`
	// Target is what follows the kind in --check: "PORT" for tcp, "PORT[/PATH]" for http.
	Target   string   `json:"target"`
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	Rise     int      `json:"rise,omitempty"`
	Fall     int      `json:"fall,omitempty"`

	Status    string     `json:"status,omitempty"`
	Output    string     `json:"output,omitempty"`
	CheckedAt *time.Time `json:"checked_at"`
}

// Duration is a time.Duration spelled like "10s" in JSON (a number is seconds).
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var sec float64
		if err := json.Unmarshal(b, &sec); err != nil {
			return fmt.Errorf("a duration is a string like \"10s\" or a number of seconds")
		}
		*d = Duration(sec * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts a check object or its --check spelling ("http:8080/healthz"),
// so a CNI config can list checks as strings. Unknown fields are refused, as for
// the rest of an API request (the catalog's own copies decode leniently: ext.go).
func (c *Check) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		kind, target, _ := strings.Cut(s, ":")
		*c = Check{Kind: kind, Target: target}
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode((*plainCheck)(c))
}

// plainCheck is Check without its JSON method.
type plainCheck Check

// Spec is the check as --check spells it.
func (c Check) Spec() string { return c.Kind + ":" + c.Target }

// Port and Path split the target; Path is "/" for an http check without one.
func (c Check) Port() (uint16, string, error) {
	ps, path, hasPath := strings.Cut(c.Target, "/")
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return 0, "", fmt.Errorf("invalid check %q: port must be 1-65535", c.Spec())
	}
	switch c.Kind {
	case CheckTCP:
		if hasPath {
			return 0, "", fmt.Errorf("invalid check %q: a tcp check has no path", c.Spec())
		}
	case CheckHTTP:
	default:
		return 0, "", fmt.Errorf("invalid check %q: kind must be tcp or http (tcp:PORT, http:PORT[/PATH])", c.Spec())
	}
	return uint16(port), "/" + path, nil
}

// Every returns the check's interval, timeout, rise and fall with defaults applied.
func (c Check) Every() (interval, timeout time.Duration, rise, fall int) {
	interval, timeout, rise, fall = time.Duration(c.Interval), time.Duration(c.Timeout), c.Rise, c.Fall
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	if rise <= 0 {
		rise = DefaultCheckRise
	}
	if fall <= 0 {
		fall = DefaultCheckFall
	}
	return
}

// Config is the check without its status: what decides how it runs.
func (c Check) Config() Check {
	return Check{Kind: c.Kind, Target: c.Target, Interval: c.Interval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall}
}

// Validate checks a check as a client gave it.
func (c Check) Validate() error {
	if _, _, err := c.Port(); err != nil {
		return err
	}
	if c.Kind == CheckHTTP && (len(c.Target) > 200 || strings.ContainsAny(c.Target, " \t\r\n?#")) {
		return fmt.Errorf("invalid check %q: the path must be at most 200 characters without spaces, '?' or '#'", c.Spec())
	}
	interval, timeout, rise, fall := c.Every()
	switch {
	case c.Interval < 0 || c.Timeout < 0 || c.Rise < 0 || c.Fall < 0:
		return fmt.Errorf("invalid check %q: interval, timeout, rise and fall must not be negative", c.Spec())
	case interval < 100*time.Millisecond || interval > time.Hour:
		return fmt.Errorf("invalid check %q: interval %s must be between 100ms and 1h", c.Spec(), interval)
	case timeout < 10*time.Millisecond || timeout > interval:
		return fmt.Errorf("invalid check %q: timeout %s must be at least 10ms and at most the interval (%s)", c.Spec(), timeout, interval)
	case rise > 100 || fall > 100:
		return fmt.Errorf("invalid check %q: rise and fall must be 1-100", c.Spec())
	case c.Status != "" || c.Output != "" || c.CheckedAt != nil:
		return fmt.Errorf("invalid check %q: status, output and checked_at are the agent's to set", c.Spec())
	}
	return nil
}

// MaxChecks bounds the checks of one machine.
const MaxChecks = 8

// ParseCheck parses --check KIND:TARGET.
func ParseCheck(s string) (Check, error) {
	kind, target, ok := strings.Cut(s, ":")
	if !ok {
		return Check{}, fmt.Errorf("invalid check %q: want tcp:PORT or http:PORT[/PATH]", s)
	}
	c := Check{Kind: strings.ToLower(kind), Target: target}
	return c, c.Validate()
}

// AggregateHealth is a machine's health from its checks' statuses: critical if any is,
// passing if all are, unknown otherwise; "" without checks.
func AggregateHealth(checks []Check) string {
	if len(checks) == 0 {
		return ""
	}
	all := true
	for _, c := range checks {
		switch c.Status {
		case HealthCritical:
			return HealthCritical
		case HealthPassing:
		default:
			all = false
		}
	}
	if all {
		return HealthPassing
	}
	return HealthUnknown
}

// WithHealth returns a copy of m with new check statuses and the health they add up
// to; m and what it shares are untouched.
func (m *Machine) WithHealth(checks []Check) *Machine {
	out := *m
	a := MachineAttrs{}
	if m.MachineAttrs != nil {
		a = *m.MachineAttrs
	}
	a.Checks = slices.Clone(checks)
	a.Health = AggregateHealth(a.Checks)
	out.MachineAttrs = &a
	return &out
}

// HealthOrPassing is the health a machine shows: a machine without checks passes.
func (a *MachineAttrs) HealthOrPassing() string {
	if a == nil || a.Health == "" {
		return HealthPassing
	}
	return a.Health
}
