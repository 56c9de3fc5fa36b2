package mesh

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/schema"
)

// Error is an operation error with the HTTP status the API answers with (schema.Error).
type Error = schema.Error

func invalid(format string, a ...any) error {
	return &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}
func notFound(format string, a ...any) error {
	return &Error{Code: http.StatusNotFound, Msg: fmt.Sprintf(format, a...)}
}
func conflict(format string, a ...any) error {
	return &Error{Code: http.StatusConflict, Msg: fmt.Sprintf(format, a...)}
}

// overLimit is a quota refusal (SPEC §10): 403, which the CLI reports with exit 1.
func overLimit(err error) error { return &Error{Code: http.StatusForbidden, Msg: err.Error()} }

// orgLimit refuses one more object of kind in org over its limit.
func orgLimit(l quota.Limits, cat Reader, k quota.Kind, org string) error {
	if err := l.CheckOrg(k, org, orgOverrides(cat, org), quota.Count(cat.List(k.RecordKind()), k, org)); err != nil {
		return overLimit(err)
	}
	return nil
}

func unavailable(format string, a ...any) error {
	return &Error{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf(format, a...)}
}

// StatusCode returns the HTTP status that fits err (500 for unknown errors).
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var re *gossip.RemoteError
	if errors.As(err, &re) && re.Code != 0 {
		return re.Code
	}
	return http.StatusInternalServerError
}
