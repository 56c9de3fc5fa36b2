package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
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

// AddDNSRecord adds a custom .internal record (POST /v1/dns).
func (c *Client) AddDNSRecord(ctx context.Context, spec mesh.DNSRecordSpec) (*catalog.DNSRecord, error) {
	var out catalog.DNSRecord
	if err := c.Do(ctx, "POST", "/v1/dns", spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDNSRecords lists custom records, of one org if org is set (GET /v1/dns).
func (c *Client) ListDNSRecords(ctx context.Context, org string) ([]catalog.DNSRecord, error) {
	var out []catalog.DNSRecord
	err := c.Do(ctx, "GET", "/v1/dns?org="+url.QueryEscape(org), nil, &out)
	return out, err
}

// RemoveDNSRecords removes the records a filter selects and returns them (DELETE /v1/dns).
func (c *Client) RemoveDNSRecords(ctx context.Context, f mesh.DNSRecordFilter) ([]catalog.DNSRecord, error) {
	var out []catalog.DNSRecord
	err := c.Do(ctx, "DELETE", "/v1/dns", f, &out)
	return out, err
}
