// Package mock is the mock plugin: it answers with a fixed status, header
// fields and body without an upstream, for every path or one exact path,
// optionally after a delay (to simulate a slow backend).
package mock

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "mock"

// Options is the [plugins.NAME] table.
type Options struct {
	// Status defaults to 200.
	Status int `toml:"status"`
	// Headers are "Name: value" lines added to the answer. Without a
	// Content-Type line, a body that is valid JSON is sent as
	// application/json, anything else as text/plain.
	Headers []string `toml:"headers"`
	Data    string   `toml:"data"`
	// Path limits the mock to this exact path; "" answers every path.
	Path  string          `toml:"path"`
	Delay config.Duration `toml:"delay"`
}

type field struct{ name, value string }

// Mock is a built mock plugin.
type Mock struct {
	status      int
	headers     []field
	contentType string
	body        []byte
	path        string
	delay       time.Duration
}

var _ plugin.Plugin = (*Mock)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &Mock{status: o.Status, body: []byte(o.Data), path: o.Path, delay: o.Delay.D()}
	if p.status == 0 {
		p.status = 200
	}
	if p.status < 200 || p.status > 599 {
		return nil, fmt.Errorf("status: %d must be between 200 and 599", o.Status)
	}
	if p.path != "" && p.path[0] != '/' {
		return nil, fmt.Errorf("path: %q must start with /", p.path)
	}
	if p.delay > time.Minute {
		return nil, fmt.Errorf("delay: %s is longer than 1m", p.delay)
	}
	for i, line := range o.Headers {
		name, value, err := ParseHeaderLine(line)
		if err != nil {
			return nil, fmt.Errorf("headers: entry %d: %w", i, err)
		}
		if httpx.EqualFold(name, "Content-Type") {
			p.contentType = value
			continue
		}
		p.headers = append(p.headers, field{name, value})
	}
	if p.contentType == "" {
		p.contentType = "text/plain; charset=utf-8"
		if t := strings.TrimSpace(o.Data); t != "" && (t[0] == '{' || t[0] == '[') && json.Valid(p.body) {
			p.contentType = "application/json"
		}
	}
	return p, nil
}

// Request answers when the path matches.
func (p *Mock) Request(c *httpx.Ctx) bool {
	if p.path != "" && c.Req.Path != p.path {
		return false
	}
	if p.delay > 0 {
		t := time.NewTimer(p.delay)
		if c.Context != nil {
			select {
			case <-t.C:
			case <-c.Context.Done():
				t.Stop()
			}
		} else {
			<-t.C
		}
	}
	for _, f := range p.headers {
		c.Resp.Header.Add(f.name, f.value)
	}
	c.Send(p.status, p.contentType, p.body)
	return true
}

// ParseHeaderLine splits "Name: value" and checks the name is a token and
// the value has no control characters.
func ParseHeaderLine(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", fmt.Errorf("%q must be \"Name: value\"", line)
	}
	value = strings.TrimSpace(value)
	if !httpx.ValidToken(name) {
		return "", "", fmt.Errorf("%q: invalid header name %q", line, name)
	}
	for i := 0; i < len(value); i++ {
		if b := value[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return "", "", fmt.Errorf("%q: control character in the value", line)
		}
	}
	return name, value, nil
}
