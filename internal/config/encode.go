package config

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/BurntSushi/toml"
)

// encDoc is the TOML shape Encode writes: the Config with each plugin's
// options inlined next to its category.
type encDoc struct {
	Basic        Basic                     `toml:"basic"`
	Upstreams    map[string]Upstream       `toml:"upstreams,omitempty"`
	Locations    map[string]Location       `toml:"locations,omitempty"`
	Servers      map[string]Server         `toml:"servers,omitempty"`
	Plugins      map[string]map[string]any `toml:"plugins,omitempty"`
	Certificates map[string]Certificate    `toml:"certificates,omitempty"`
	ACME         ACME                      `toml:"acme"`
	Tracing      Tracing                   `toml:"tracing"`
}

// Encode writes c as TOML that Parse reads back to an equal config (for the
// admin API, `config pull` and persisting an admin PUT). Keys holding their
// zero value are left out; basic.access_log and tracing.sample_ratio are
// always written, since their zero values are not their defaults.
func Encode(c *Config) ([]byte, error) {
	doc := encDoc{
		Basic:        c.Basic,
		Upstreams:    c.Upstreams,
		Locations:    c.Locations,
		Servers:      c.Servers,
		Certificates: c.Certificates,
		ACME:         c.ACME,
		Tracing:      c.Tracing,
	}
	if len(c.Plugins) > 0 {
		doc.Plugins = make(map[string]map[string]any, len(c.Plugins))
		for name, p := range c.Plugins {
			if _, ok := p.Options["category"]; ok {
				return nil, fmt.Errorf("plugins.%s: option %q clashes with the category key", name, "category")
			}
			m := make(map[string]any, len(p.Options)+1)
			maps.Copy(m, p.Options)
			m["category"] = p.Category
			doc.Plugins[name] = m
		}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// Clone returns a deep copy of c: no slice or map is shared, so the copy
// may be edited (the admin API) while c stays in use.
func Clone(c *Config) *Config {
	if c == nil {
		return nil
	}
	n := *c
	n.Basic.TrustedProxies = slices.Clone(c.Basic.TrustedProxies)
	n.Upstreams = cloneMap(c.Upstreams, func(u Upstream) Upstream {
		u.Addrs = slices.Clone(u.Addrs)
		u.Weights = slices.Clone(u.Weights)
		return u
	})
	n.Locations = cloneMap(c.Locations, func(l Location) Location {
		l.HeadersAdd = slices.Clone(l.HeadersAdd)
		l.HeadersSet = maps.Clone(l.HeadersSet)
		l.HeadersRemove = slices.Clone(l.HeadersRemove)
		l.ProxySetHeaders = maps.Clone(l.ProxySetHeaders)
		l.ProxyAddHeaders = slices.Clone(l.ProxyAddHeaders)
		l.ProxyRemoveHeaders = slices.Clone(l.ProxyRemoveHeaders)
		l.Plugins = slices.Clone(l.Plugins)
		return l
	})
	n.Servers = cloneMap(c.Servers, func(s Server) Server {
		s.Locations = slices.Clone(s.Locations)
		s.Certificates = slices.Clone(s.Certificates)
		s.Plugins = slices.Clone(s.Plugins)
		return s
	})
	n.Plugins = cloneMap(c.Plugins, func(p Plugin) Plugin {
		if p.Options != nil {
			p.Options = cloneValue(p.Options).(map[string]any)
		}
		return p
	})
	n.Certificates = cloneMap(c.Certificates, func(ct Certificate) Certificate {
		ct.Domains = slices.Clone(ct.Domains)
		return ct
	})
	n.origins = maps.Clone(c.origins)
	return &n
}

func cloneMap[T any](m map[string]T, f func(T) T) map[string]T {
	if m == nil {
		return nil
	}
	out := make(map[string]T, len(m))
	for k, v := range m {
		out[k] = f(v)
	}
	return out
}

// cloneValue deep-copies a decoded TOML value (plugin options).
func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneValue(e)
		}
		return out
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []map[string]any:
		if x == nil {
			return x
		}
		out := make([]map[string]any, len(x))
		for i, e := range x {
			out[i], _ = cloneValue(e).(map[string]any)
		}
		return out
	case []string:
		return slices.Clone(x)
	case map[string]string:
		return maps.Clone(x)
	}
	return v
}
