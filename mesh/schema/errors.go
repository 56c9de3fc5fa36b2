// Package schema holds the shapes of the agent API's requests and answers and
// the rules names follow. The CLI and the agent both check input with it, so the
// CLI can say "invalid app name" without asking the agent, and link it without the
// node: it must import nothing heavier than package catalog and quota (no gossip,
// storage or metrics), because every package the CLI links runs its init in every
// CLI call.
package schema

import (
	"fmt"
	"net/http"
)

// Error is an operation error with the HTTP status the API answers with. The CLI turns
// StatusBadRequest into exit code 2 (invalid input) and everything else into 1.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string   { return e.Msg }
func (e *Error) StatusCode() int { return e.Code }

func invalid(format string, a ...any) error {
	return &Error{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}
