// Package keyauth is the key_auth plugin: the request must carry one of the
// configured API keys in a header or a query parameter, else 401.
//
// Keys are compared in constant time: the presented key and every configured
// key are hashed with SHA-256 (so the comparison does not leak lengths) and
// the digest is compared against every key without an early exit.
package keyauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "key_auth"

// Options is the [plugins.NAME] table.
type Options struct {
	// Header is the request header carrying the key (e.g. "X-API-Key").
	Header string `toml:"header"`
	// Query is the query parameter carrying the key; exactly one of Header
	// and Query is set.
	Query string   `toml:"query"`
	Keys  []string `toml:"keys"`
	// HideCredentials removes the key before the upstream sees the request
	// (default true).
	HideCredentials *bool `toml:"hide_credentials"`
}

// KeyAuth is a built key_auth plugin.
type KeyAuth struct {
	header string
	query  string
	hide   bool
	keys   [][sha256.Size]byte
}

var _ plugin.Plugin = (*KeyAuth)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &KeyAuth{header: strings.TrimSpace(o.Header), query: strings.TrimSpace(o.Query), hide: true}
	if o.HideCredentials != nil {
		p.hide = *o.HideCredentials
	}
	switch {
	case p.header == "" && p.query == "":
		return nil, errors.New("header: one of header or query is required")
	case p.header != "" && p.query != "":
		return nil, errors.New("query: set header or query, not both")
	case p.header != "" && !httpx.ValidToken(p.header):
		return nil, fmt.Errorf("header: invalid header name %q", p.header)
	}
	if len(o.Keys) == 0 {
		return nil, errors.New("keys: at least one key is required")
	}
	for i, k := range o.Keys {
		if k == "" {
			return nil, fmt.Errorf("keys: entry %d is empty", i)
		}
		p.keys = append(p.keys, sha256.Sum256([]byte(k)))
	}
	return p, nil
}

// Request checks the key.
func (p *KeyAuth) Request(c *httpx.Ctx) bool {
	var key string
	var found bool
	if p.header != "" {
		key, found = c.Req.Header.Lookup(p.header)
	} else {
		key, found = queryValue(c.Req.RawQuery, p.query)
	}
	if !found || key == "" {
		c.Error(401, "missing API key")
		return true
	}
	if !p.match(key) {
		c.Error(401, "invalid API key")
		return true
	}
	if p.hide {
		if p.header != "" {
			c.Req.Header.Del(p.header)
		} else {
			c.Req.RawQuery = removeQuery(c.Req.RawQuery, p.query)
		}
	}
	return false
}

// match compares key against every configured key in constant time.
func (p *KeyAuth) match(key string) bool {
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for i := range p.keys {
		ok |= subtle.ConstantTimeCompare(sum[:], p.keys[i][:])
	}
	return ok == 1
}

// queryValue returns the first value of parameter name in a raw query.
// Parameters without escapes are returned without allocating.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if !keyEqual(k, name) {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return "", true
			}
			return u, true
		}
		return v, true
	}
	return "", false
}

func keyEqual(k, name string) bool {
	if k == name {
		return true
	}
	if strings.ContainsAny(k, "%+") {
		u, err := url.QueryUnescape(k)
		return err == nil && u == name
	}
	return false
}

// removeQuery returns raw without any parameter called name, other
// parameters kept in order and as written.
func removeQuery(raw, name string) string {
	var b strings.Builder
	rest := raw
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		k, _, _ := strings.Cut(part, "=")
		if keyEqual(k, name) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}
