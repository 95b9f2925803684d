// Package plugin defines the plugin interface, the build environment a
// plugin gets, and the chain the engine composes per location. Each plugin
// category lives in its own sub-package; internal/plugin/catalog lists them
// all explicitly (no init() registration).
package plugin

import (
	"log/slog"
	"net/netip"

	"github.com/pingap-go/pingap/internal/httpx"
)

// Plugin is one configured plugin instance, shared by every request of every
// location that lists it. It must be safe for concurrent use and must not
// keep the *httpx.Ctx (or strings from it) after Request/Response return.
type Plugin interface {
	// Request runs in the request phase, in chain order. It returns true
	// when it answered the request (c.Send / c.Error): later plugins and the
	// upstream are then skipped, and the response phase runs for the
	// plugins before it.
	Request(c *httpx.Ctx) (handled bool)
}

// ResponseHandler is implemented by plugins that act on the response. It
// runs in reverse chain order, for every plugin whose Request ran (also on a
// later plugin's own answer), after the response head is known and before
// it is written. It may change c.Resp.Status and c.Resp.Header and install
// body filters with c.AddBodyFilter.
type ResponseHandler interface {
	Response(c *httpx.Ctx)
}

// Finisher is implemented by plugins that must learn when a request is over
// (after the last body byte was written or the request failed), such as an
// in-flight limit. Finish runs for every plugin whose Request ran, in reverse
// order.
type Finisher interface {
	Finish(c *httpx.Ctx)
}

// Closer is implemented by plugins that hold background resources
// (goroutines, connections); Close is called once the plugin is retired by a
// reload or at shutdown.
type Closer interface {
	Close() error
}

// Env is what a builder gets besides its options.
type Env struct {
	// Name is the [plugins.NAME] name.
	Name string
	// TrustedProxies is basic.trusted_proxies, parsed.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
}

// Builder makes a plugin from its options (the [plugins.NAME] table without
// "category"). It validates every key; errors name the key (the engine
// prefixes the plugin name). Builders decode options with
// config.DecodeOptions, which rejects unknown keys.
type Builder func(env Env, options map[string]any) (Plugin, error)

// Category is one entry of the catalogue.
type Category struct {
	Name  string
	Build Builder
}
