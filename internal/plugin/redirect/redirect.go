// Package redirect is the redirect plugin: it answers with a redirect when
// the request is not already where it should be: plain HTTP with
// http_to_https, another host than host, or a path outside prefix. Path and
// query are kept.
//
// The redirect only happens when needed, so a plugin on a location that the
// redirect target also reaches never loops: an https request passes
// http_to_https, a request for host passes host, and a path already under
// prefix passes prefix.
package redirect

import (
	"fmt"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "redirect"

// Options is the [plugins.NAME] table.
type Options struct {
	// HTTPToHTTPS redirects plain HTTP requests to https://HOST/PATH?QUERY,
	// dropping the incoming port (443 is implied).
	HTTPToHTTPS bool `toml:"http_to_https"`
	// Host replaces the request's host (it may carry a port).
	Host string `toml:"host"`
	// Prefix is put in front of paths that do not start with it.
	Prefix string `toml:"prefix"`
	// Status is 301 (default), 302, 307 or 308.
	Status int `toml:"status"`
}

// Redirect is a built redirect plugin.
type Redirect struct {
	https     bool
	host      string
	hostMatch string // host lower-cased, without port
	prefix    string
	status    int
}

var _ plugin.Plugin = (*Redirect)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &Redirect{https: o.HTTPToHTTPS, host: o.Host, prefix: strings.TrimRight(o.Prefix, "/"), status: o.Status}
	switch p.status {
	case 0:
		p.status = 301
	case 301, 302, 307, 308:
	default:
		return nil, fmt.Errorf("status: %d must be 301, 302, 307 or 308", o.Status)
	}
	if p.host != "" {
		if strings.ContainsAny(p.host, "/?#@ \t") || strings.Contains(p.host, "://") {
			return nil, fmt.Errorf("host: %q must be a host name, optionally with a port", o.Host)
		}
		p.hostMatch = httpx.LowerHost(p.host)
	}
	if o.Prefix != "" && (o.Prefix[0] != '/' || strings.ContainsAny(o.Prefix, "?# \t")) {
		return nil, fmt.Errorf("prefix: %q must be a path starting with /", o.Prefix)
	}
	if !p.https && p.host == "" && o.Prefix == "" {
		return nil, fmt.Errorf("http_to_https: set http_to_https, host or prefix")
	}
	return p, nil
}

// Request answers with the redirect when one is needed.
func (p *Redirect) Request(c *httpx.Ctx) bool {
	path := c.Req.Path
	// The client's own path, not one a location rewrite made for the
	// upstream.
	if uri := c.Req.RequestURI; len(uri) > 0 && uri[0] == '/' {
		path, _, _ = strings.Cut(uri, "?")
	}
	toHTTPS := p.https && c.Scheme == "http"
	toHost := p.host != "" && httpx.LowerHost(c.Req.Host) != p.hostMatch
	toPrefix := p.prefix != "" && !hasPathPrefix(path, p.prefix)
	if !toHTTPS && !toHost && !toPrefix {
		return false
	}
	scheme := c.Scheme
	if p.https {
		scheme = "https"
	}
	host := c.Req.Host
	switch {
	case p.host != "":
		host = p.host
	case toHTTPS:
		host = httpx.HostOnly(host)
	}
	b := c.Scratch[:0]
	b = append(b, scheme...)
	b = append(b, "://"...)
	b = append(b, host...)
	if toPrefix {
		b = append(b, p.prefix...)
	}
	b = append(b, path...)
	if c.Req.RawQuery != "" {
		b = append(b, '?')
		b = append(b, c.Req.RawQuery...)
	}
	c.Scratch = b
	c.Send(p.status, "", nil)
	c.Resp.Header.Set("Location", string(b))
	return true
}

// hasPathPrefix reports whether path is prefix or below it ("/api" covers
// "/api" and "/api/x", not "/apix").
func hasPathPrefix(path, prefix string) bool {
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}
