package api

import (
	"net/http"

	"github.com/dogwood/dogwood/mesh"
)

// dnsRoutes serves custom .internal records (`dogwood dns`).
func (s *Server) dnsRoutes(h func(pattern string, f func(r *http.Request) (any, error))) {
	h("GET /v1/dns", func(r *http.Request) (any, error) { return s.Node.DNSRecords.List(r.URL.Query().Get("org")) })
	h("POST /v1/dns", func(r *http.Request) (any, error) {
		var spec mesh.DNSRecordSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.Node.DNSRecords.Add(r.Context(), spec)
	})
	h("DELETE /v1/dns", func(r *http.Request) (any, error) {
		var f mesh.DNSRecordFilter
		if err := decode(r, &f); err != nil {
			return nil, err
		}
		return s.Node.DNSRecords.Remove(r.Context(), f)
	})
}
