// Package forwardauth is the forward_auth plugin: every request is first
// shown to an auth service (a GET to url with the chosen request headers and
// X-Forwarded-Method/-Proto/-Host/-Uri/-For). A 2xx answer lets the request
// through, with the chosen headers of that answer copied onto the upstream
// request; any other answer (401, 403, a 302 to a login page) is returned to
// the client as is, body bounded to maxBody; an unreachable or slow auth
// service gives 503.
//
// The plugin owns its http.Transport (pooled keep-alive connections to the
// auth service, no environment proxy), closed when the plugin is retired.
package forwardauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "forward_auth"

const (
	defaultTimeout = 5 * time.Second
	// maxBody bounds the refusal body relayed to the client (and what we
	// drain from a 2xx answer to keep its connection).
	maxBody = 64 << 10
)

// Options is the [plugins.NAME] table.
type Options struct {
	// URL is the auth service endpoint (http or https).
	URL string `toml:"url"`
	// RequestHeaders are client request headers copied to the auth request
	// (e.g. Authorization, Cookie).
	RequestHeaders []string `toml:"request_headers"`
	// UpstreamHeaders are headers copied from a 2xx auth answer onto the
	// upstream request (e.g. X-User). A client's own values of these
	// headers are always removed, so they cannot be forged.
	UpstreamHeaders []string        `toml:"upstream_headers"`
	Timeout         config.Duration `toml:"timeout"`
}

// ForwardAuth is a built forward_auth plugin.
type ForwardAuth struct {
	url             string
	requestHeaders  []string
	upstreamHeaders []string
	timeout         time.Duration
	transport       *http.Transport
	client          *http.Client
}

var (
	_ plugin.Plugin = (*ForwardAuth)(nil)
	_ plugin.Closer = (*ForwardAuth)(nil)
)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	if o.URL == "" {
		return nil, errors.New("url: the auth service URL is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url: %q must be an http:// or https:// URL", o.URL)
	}
	p := &ForwardAuth{url: o.URL, timeout: o.Timeout.D()}
	if p.timeout == 0 {
		p.timeout = defaultTimeout
	}
	for i, h := range o.RequestHeaders {
		if !httpx.ValidToken(h) {
			return nil, fmt.Errorf("request_headers: entry %d: invalid header name %q", i, h)
		}
		p.requestHeaders = append(p.requestHeaders, http.CanonicalHeaderKey(h))
	}
	for i, h := range o.UpstreamHeaders {
		if !httpx.ValidToken(h) {
			return nil, fmt.Errorf("upstream_headers: entry %d: invalid header name %q", i, h)
		}
		p.upstreamHeaders = append(p.upstreamHeaders, http.CanonicalHeaderKey(h))
	}
	p.transport = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: p.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   p.timeout,
		ResponseHeaderTimeout: p.timeout,
		ForceAttemptHTTP2:     true,
	}
	p.client = &http.Client{
		Transport: p.transport,
		Timeout:   p.timeout,
		// A redirect (to a login page) is an answer for the client.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// Close releases the pooled connections.
func (p *ForwardAuth) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// hopByHop fields are not relayed from the auth answer (RFC 9110 7.6.1),
// nor its framing: the body is re-framed.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer", "Content-Length"}

// Request asks the auth service.
func (p *ForwardAuth) Request(c *httpx.Ctx) bool {
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		c.Error(503, "auth service unavailable")
		return true
	}
	for _, name := range p.requestHeaders {
		c.Req.Header.Values(name, func(v string) bool {
			req.Header.Add(name, v)
			return true
		})
	}
	req.Header.Set("X-Forwarded-Method", c.Req.Method)
	req.Header.Set("X-Forwarded-Proto", c.Scheme)
	req.Header.Set("X-Forwarded-Host", c.Req.Host)
	req.Header.Set("X-Forwarded-Uri", c.Req.RequestURI)
	if c.ClientIP.IsValid() {
		req.Header.Set("X-Forwarded-For", c.ClientIP.String())
	}
	resp, err := p.client.Do(req)
	if err != nil {
		c.Error(503, "auth service unavailable")
		return true
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		for _, name := range p.upstreamHeaders {
			c.Req.Header.Del(name)
			for _, v := range resp.Header.Values(name) {
				c.Req.Header.Add(name, v)
			}
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil && len(body) == 0 {
		c.Error(503, "auth service unavailable")
		return true
	}
	c.Resp.Header.Reset()
	for name, values := range resp.Header {
		if isHopByHop(name) {
			continue
		}
		for _, v := range values {
			c.Resp.Header.Add(name, v)
		}
	}
	c.Send(resp.StatusCode, "", body)
	return true
}

func isHopByHop(name string) bool {
	for _, h := range hopByHop {
		if httpx.EqualFold(name, h) {
			return true
		}
	}
	return false
}
