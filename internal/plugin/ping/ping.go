// Package ping is the ping plugin: it answers 200 "pong" on one path
// (default /ping) for load balancer probes, without an upstream; other paths
// pass through.
package ping

import (
	"fmt"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "ping"

// Options is the [plugins.NAME] table.
type Options struct {
	Path string `toml:"path"`
}

// Ping is a built ping plugin.
type Ping struct {
	path string
}

var _ plugin.Plugin = (*Ping)(nil)

var pong = []byte("pong")

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &Ping{path: o.Path}
	if p.path == "" {
		p.path = "/ping"
	}
	if p.path[0] != '/' {
		return nil, fmt.Errorf("path: %q must start with /", o.Path)
	}
	return p, nil
}

// Request answers the ping path.
func (p *Ping) Request(c *httpx.Ctx) bool {
	if c.Req.Path != p.path {
		return false
	}
	c.Send(200, "text/plain; charset=utf-8", pong)
	return true
}
