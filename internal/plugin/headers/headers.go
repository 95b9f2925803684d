// Package headers is the headers plugin: the location header keys as a
// reusable plugin. request_* change the request the upstream receives;
// response_* change the response. Within each side the order is remove,
// then set, then add. Values are templates with the contract's $variables
// ($host, $remote_addr, $request_id, $http_NAME, ...), compiled at build.
package headers

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "headers"

// Options is the [plugins.NAME] table.
type Options struct {
	RequestSet     map[string]string `toml:"request_set"`
	RequestAdd     []string          `toml:"request_add"`
	RequestRemove  []string          `toml:"request_remove"`
	ResponseSet    map[string]string `toml:"response_set"`
	ResponseAdd    []string          `toml:"response_add"`
	ResponseRemove []string          `toml:"response_remove"`
}

type op struct {
	name  string
	value *httpx.Template
}

// ops is one side's changes.
type ops struct {
	remove   []string
	set, add []op
}

func (o *ops) apply(h *httpx.Header, c *httpx.Ctx) {
	for _, name := range o.remove {
		h.Del(name)
	}
	for i := range o.set {
		h.Set(o.set[i].name, o.set[i].value.String(c))
	}
	for i := range o.add {
		h.Add(o.add[i].name, o.add[i].value.String(c))
	}
}

// Headers is a built headers plugin.
type Headers struct {
	req, resp ops
}

var (
	_ plugin.Plugin          = (*Headers)(nil)
	_ plugin.ResponseHandler = (*Headers)(nil)
)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	hostname, _ := os.Hostname()
	p := &Headers{}
	var err error
	if p.req, err = build("request", o.RequestSet, o.RequestAdd, o.RequestRemove, hostname); err != nil {
		return nil, err
	}
	if p.resp, err = build("response", o.ResponseSet, o.ResponseAdd, o.ResponseRemove, hostname); err != nil {
		return nil, err
	}
	return p, nil
}

func build(side string, set map[string]string, add, remove []string, hostname string) (ops, error) {
	var out ops
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !httpx.ValidToken(name) {
			return out, fmt.Errorf("%s_set: invalid header name %q", side, name)
		}
		t, err := compile(set[name], hostname)
		if err != nil {
			return out, fmt.Errorf("%s_set: %s: %w", side, name, err)
		}
		out.set = append(out.set, op{name, t})
	}
	for i, line := range add {
		name, value, ok := strings.Cut(line, ":")
		if !ok || !httpx.ValidToken(name) {
			return out, fmt.Errorf("%s_add: entry %d %q must be \"Name: value\"", side, i, line)
		}
		t, err := compile(strings.TrimSpace(value), hostname)
		if err != nil {
			return out, fmt.Errorf("%s_add: entry %d: %w", side, i, err)
		}
		out.add = append(out.add, op{name, t})
	}
	for i, name := range remove {
		if !httpx.ValidToken(name) {
			return out, fmt.Errorf("%s_remove: entry %d: invalid header name %q", side, i, name)
		}
		out.remove = append(out.remove, name)
	}
	return out, nil
}

func compile(value, hostname string) (*httpx.Template, error) {
	for i := 0; i < len(value); i++ {
		if b := value[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return nil, fmt.Errorf("control character in %q", value)
		}
	}
	return httpx.CompileTemplate(value, hostname)
}

// Request changes the upstream request's header.
func (p *Headers) Request(c *httpx.Ctx) bool {
	p.req.apply(&c.Req.Header, c)
	return false
}

// Response changes the response header.
func (p *Headers) Response(c *httpx.Ctx) {
	p.resp.apply(&c.Resp.Header, c)
}
