// Package example is the plugin used by the "Writing a plugin" guide in
// docs/plugins.md: a maintenance switch. While it is in a location's chain,
// requests get 503 with Retry-After, except paths listed in allow_paths
// (health checks, the status page), and every response it sees carries
// X-Maintenance: on. It is complete and tested but deliberately not in the
// catalogue.
package example

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the name a [plugins.NAME] table would use in its category key
// once the package is listed in internal/plugin/catalog/catalog.go.
const Category = "maintenance"

// Options is the plugin's TOML table. Every field has a toml tag; unknown
// keys and wrong types are rejected by config.DecodeOptions.
type Options struct {
	// Message is the JSON error text (default "down for maintenance").
	Message string `toml:"message"`
	// RetryAfter is sent as Retry-After in seconds (default "5m"); a
	// config.Duration accepts "90s" or an integer of seconds.
	RetryAfter config.Duration `toml:"retry_after"`
	// AllowPaths are path prefixes still served ("/health" covers
	// "/health" and "/health/db", not "/healthz").
	AllowPaths []string `toml:"allow_paths"`
}

// Maintenance is one configured instance. It is shared by every request of
// every location listing it, so it is immutable after New.
type Maintenance struct {
	message    string
	retryAfter string // pre-formatted: no per-request strconv
	allow      []string
}

// Interface guards: the chain detects the optional interfaces by type
// assertion, so a typo in a method signature would silently drop a phase.
var (
	_ plugin.Plugin          = (*Maintenance)(nil)
	_ plugin.ResponseHandler = (*Maintenance)(nil)
)

// New is the plugin.Builder. It validates every key and names the key in
// its errors (the engine prefixes the plugin name).
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &Maintenance{message: o.Message}
	if p.message == "" {
		p.message = "down for maintenance"
	}
	ra := o.RetryAfter.D()
	if ra == 0 {
		ra = 5 * time.Minute
	}
	if ra < time.Second {
		return nil, fmt.Errorf("retry_after: %s is shorter than 1s", ra)
	}
	p.retryAfter = strconv.FormatInt(int64(ra/time.Second), 10)
	for i, path := range o.AllowPaths {
		if path == "" || path[0] != '/' {
			return nil, fmt.Errorf("allow_paths: entry %d %q must start with /", i, path)
		}
		p.allow = append(p.allow, strings.TrimRight(path, "/"))
	}
	return p, nil
}

// Request answers 503 unless the path is allowed. Returning true stops the
// chain: no later plugin and no upstream sees the request.
func (p *Maintenance) Request(c *httpx.Ctx) bool {
	for _, prefix := range p.allow {
		if hasPathPrefix(c.Req.Path, prefix) {
			return false
		}
	}
	c.Error(503, p.message) // the contract's {"error": "..."} body
	c.Resp.Header.Set("Retry-After", p.retryAfter)
	return true
}

// Response runs on the way back, for the upstream's answer and for local
// answers (ours or a later plugin's).
func (p *Maintenance) Response(c *httpx.Ctx) {
	c.Resp.Header.Set("X-Maintenance", "on")
}

func hasPathPrefix(path, prefix string) bool {
	if prefix == "" {
		return true // "/" was given
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}
