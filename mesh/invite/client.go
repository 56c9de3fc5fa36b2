package invite

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Redeem sends the code's secret and the laptop's public key to the gateway
// the code names, trusting only the certificate the code pins. Errors wrap
// ErrUnknown, ErrUsed, ErrExpired or ErrPin where that is the reason.
func Redeem(ctx context.Context, c Code, publicKey string) (*Response, error) {
	body, _ := json.Marshal(Request{Secret: base64.RawURLEncoding.EncodeToString(c.Secret[:]), PublicKey: publicKey})
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:       pinnedConfig(c.Pin),
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 45 * time.Second}
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+c.Endpoint+"/v1/redeem", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		if errors.Is(err, ErrPin) {
			return nil, fmt.Errorf("gateway %s: %w", c.Endpoint, ErrPin)
		}
		return nil, fmt.Errorf("cannot reach the gateway's invite listener at %s: %w", c.Endpoint, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", c.Endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated {
		var e errorBody
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = "gateway answered " + resp.Status
		}
		switch e.Reason {
		case "unknown":
			return nil, ErrUnknown
		case "used":
			return nil, ErrUsed
		case "expired":
			return nil, ErrExpired
		}
		return nil, errors.New(e.Error)
	}
	var out Response
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("gateway %s sent a bad answer: %w", c.Endpoint, err)
	}
	return &out, nil
}
