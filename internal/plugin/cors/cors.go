// Package cors is the cors plugin: it answers CORS preflight requests itself
// (204) and adds the Access-Control-* fields to responses for allowed
// origins.
//
// Origins are matched against allow_origins: "*" (any), an exact origin
// ("https://app.example.com"), or a wildcard "https://*.example.com" that
// matches one or more labels in front of the domain (a.example.com,
// a.b.example.com) but not example.com itself, with the same scheme and
// port. Matching is case-insensitive.
//
// A request from an origin that is not allowed gets no CORS fields: a
// preflight is still answered 204 (the browser then refuses), a simple
// request passes through untouched. The matched origin is echoed back;
// "*" is sent only when allow_origins is "*" and allow_credentials is false
// (the Fetch standard forbids "*" with credentials).
package cors

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "cors"

type options struct {
	AllowOrigins     []string        `toml:"allow_origins"`
	AllowMethods     []string        `toml:"allow_methods"`
	AllowHeaders     []string        `toml:"allow_headers"`
	ExposeHeaders    []string        `toml:"expose_headers"`
	AllowCredentials bool            `toml:"allow_credentials"`
	MaxAge           config.Duration `toml:"max_age"`
}

// defaultMethods is allow_methods when none is configured.
var defaultMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

type wildcard struct{ prefix, suffix string } // "https://" + label(s) + ".example.com"

// Plugin is a configured cors plugin.
type Plugin struct {
	anyOrigin   bool
	exact       []string
	wildcards   []wildcard
	credentials bool

	methods string // Access-Control-Allow-Methods value
	headers string // Access-Control-Allow-Headers value; "" = echo the request's
	expose  string
	maxAge  string // "" = not sent
}

// New builds a cors plugin. Keys: allow_origins (default ["*"]),
// allow_methods (default GET, HEAD, POST, PUT, PATCH, DELETE), allow_headers
// (default: echo Access-Control-Request-Headers), expose_headers,
// allow_credentials (default false), max_age (default: not sent).
func New(env plugin.Env, opts map[string]any) (plugin.Plugin, error) {
	var o options
	if err := config.DecodeOptions(opts, &o); err != nil {
		return nil, err
	}
	p := &Plugin{credentials: o.AllowCredentials}
	if o.AllowOrigins == nil {
		o.AllowOrigins = []string{"*"}
	}
	if len(o.AllowOrigins) == 0 {
		return nil, fmt.Errorf("allow_origins: empty list (omit the key to allow any origin)")
	}
	for _, origin := range o.AllowOrigins {
		origin = strings.ToLower(strings.TrimSpace(origin))
		if origin == "*" {
			p.anyOrigin = true
			continue
		}
		scheme, host, ok := strings.Cut(origin, "://")
		if !ok || scheme == "" || host == "" || strings.ContainsAny(host, "/?# ") {
			return nil, fmt.Errorf("allow_origins: %q is not an origin (want \"*\", \"https://host[:port]\" or \"https://*.example.com\")", origin)
		}
		switch n := strings.Count(host, "*"); {
		case n == 0:
			p.exact = append(p.exact, origin)
		case n == 1 && strings.HasPrefix(host, "*.") && len(host) > 2:
			p.wildcards = append(p.wildcards, wildcard{prefix: scheme + "://", suffix: host[1:]})
		default:
			return nil, fmt.Errorf("allow_origins: %q: a wildcard must be the first label (\"https://*.example.com\")", origin)
		}
	}
	if o.AllowMethods == nil {
		o.AllowMethods = defaultMethods
	}
	for _, m := range o.AllowMethods {
		if !isToken(m) {
			return nil, fmt.Errorf("allow_methods: %q is not a method", m)
		}
	}
	for _, h := range o.AllowHeaders {
		if !isToken(h) && h != "*" {
			return nil, fmt.Errorf("allow_headers: %q is not a header name", h)
		}
	}
	for _, h := range o.ExposeHeaders {
		if !isToken(h) && h != "*" {
			return nil, fmt.Errorf("expose_headers: %q is not a header name", h)
		}
	}
	if o.MaxAge < 0 {
		return nil, fmt.Errorf("max_age: negative")
	}
	p.methods = strings.Join(o.AllowMethods, ", ")
	p.headers = strings.Join(o.AllowHeaders, ", ")
	p.expose = strings.Join(o.ExposeHeaders, ", ")
	if _, ok := opts["max_age"]; ok {
		p.maxAge = strconv.FormatInt(int64(o.MaxAge.D().Seconds()), 10)
	}
	return p, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// allowed returns the Access-Control-Allow-Origin value for origin, or ""
// when the origin is not allowed.
func (p *Plugin) allowed(origin string) string {
	if origin == "" {
		return ""
	}
	if p.anyOrigin {
		if p.credentials {
			return origin
		}
		return "*"
	}
	for _, e := range p.exact {
		if httpx.EqualFold(e, origin) {
			return origin
		}
	}
	for _, w := range p.wildcards {
		if len(origin) > len(w.prefix)+len(w.suffix) &&
			httpx.EqualFold(origin[:len(w.prefix)], w.prefix) &&
			httpx.EqualFold(origin[len(origin)-len(w.suffix):], w.suffix) &&
			isLabels(origin[len(w.prefix):len(origin)-len(w.suffix)]) {
			return origin
		}
	}
	return ""
}

// isLabels reports whether s is one or more DNS labels ("a", "a.b").
func isLabels(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

// varyOrigin reports whether responses depend on the Origin field.
func (p *Plugin) varyOrigin() bool { return !p.anyOrigin || p.credentials }

func isPreflight(c *httpx.Ctx) bool {
	return c.Req.Method == "OPTIONS" && c.Req.Header.Has("Origin") && c.Req.Header.Has("Access-Control-Request-Method")
}

// Request answers preflights with 204.
func (p *Plugin) Request(c *httpx.Ctx) bool {
	if !isPreflight(c) {
		return false
	}
	h := &c.Resp.Header
	if allow := p.allowed(c.Req.Header.Get("Origin")); allow != "" {
		h.Set("Access-Control-Allow-Origin", allow)
		if p.credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		h.Set("Access-Control-Allow-Methods", p.methods)
		if p.headers != "" {
			h.Set("Access-Control-Allow-Headers", p.headers)
		} else if req := c.Req.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		if p.maxAge != "" {
			h.Set("Access-Control-Max-Age", p.maxAge)
		}
	}
	if p.varyOrigin() {
		AddVary(h, "Origin")
	}
	AddVary(h, "Access-Control-Request-Method")
	AddVary(h, "Access-Control-Request-Headers")
	c.Send(204, "", nil)
	return true
}

// Response adds the CORS fields to an allowed origin's actual request.
func (p *Plugin) Response(c *httpx.Ctx) {
	if isPreflight(c) {
		return // answered in Request
	}
	h := &c.Resp.Header
	if p.varyOrigin() {
		AddVary(h, "Origin")
	}
	allow := p.allowed(c.Req.Header.Get("Origin"))
	if allow == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if p.expose != "" {
		h.Set("Access-Control-Expose-Headers", p.expose)
	}
}

// AddVary adds token to the response's Vary field unless it is already
// listed (or Vary is "*"). It appends a new Vary field line rather than
// rewriting an existing one, which is equivalent (RFC 9110 5.3) and
// allocates nothing.
func AddVary(h *httpx.Header, token string) {
	found := false
	h.Values("Vary", func(v string) bool {
		if httpx.HasToken(v, token) || httpx.HasToken(v, "*") {
			found = true
			return false
		}
		return true
	})
	if !found {
		h.Add("Vary", token)
	}
}

var (
	_ plugin.Plugin          = (*Plugin)(nil)
	_ plugin.ResponseHandler = (*Plugin)(nil)
)
