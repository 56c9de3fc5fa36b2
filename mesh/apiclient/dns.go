package apiclient

import (
	"context"
	"net/url"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/schema"
)

// AddDNSRecord adds a custom .internal record (POST /v1/dns).
func (c *Client) AddDNSRecord(ctx context.Context, spec schema.DNSRecordSpec) (*catalog.DNSRecord, error) {
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
func (c *Client) RemoveDNSRecords(ctx context.Context, f schema.DNSRecordFilter) ([]catalog.DNSRecord, error) {
	var out []catalog.DNSRecord
	err := c.Do(ctx, "DELETE", "/v1/dns", f, &out)
	return out, err
}
