// Package requestid is the request_id plugin: every request gets an id
// (UUID v4 or nanoid) in c.RequestID ($request_id, access logs), on the
// upstream request and on the response. A valid id sent by the client is
// kept unless overwrite is set.
//
// Random bytes come from crypto/rand in 4 KB batches held by a sync.Pool of
// generators, so an id costs no syscall and takes no shared lock; the only
// allocation is the id string itself.
package requestid

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "request_id"

const (
	defaultHeader     = "X-Request-Id"
	defaultNanoidSize = 21
	maxNanoidSize     = 128
	// maxClientID bounds a client id we keep.
	maxClientID = 128
	batch       = 4096
)

// Options is the [plugins.NAME] table.
type Options struct {
	Header string `toml:"header"`
	// Algorithm is "uuid" (default, UUID v4) or "nanoid".
	Algorithm string `toml:"algorithm"`
	// Size is the nanoid length (default 21).
	Size int `toml:"size"`
	// Overwrite replaces an id sent by the client (default false).
	Overwrite bool `toml:"overwrite"`
}

// RequestID is a built request_id plugin.
type RequestID struct {
	header    string
	nanoid    bool
	size      int
	overwrite bool
	gens      sync.Pool // *generator
}

var (
	_ plugin.Plugin          = (*RequestID)(nil)
	_ plugin.ResponseHandler = (*RequestID)(nil)
)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &RequestID{header: o.Header, overwrite: o.Overwrite}
	if p.header == "" {
		p.header = defaultHeader
	}
	if !httpx.ValidToken(p.header) {
		return nil, fmt.Errorf("header: invalid header name %q", p.header)
	}
	switch o.Algorithm {
	case "", "uuid":
		if o.Size != 0 {
			return nil, errors.New(`size: only used with algorithm = "nanoid"`)
		}
	case "nanoid":
		p.nanoid = true
		p.size = o.Size
		if p.size == 0 {
			p.size = defaultNanoidSize
		}
		if p.size < 8 || p.size > maxNanoidSize {
			return nil, fmt.Errorf("size: %d must be between 8 and %d", o.Size, maxNanoidSize)
		}
	default:
		return nil, fmt.Errorf(`algorithm: %q must be "uuid" or "nanoid"`, o.Algorithm)
	}
	p.gens.New = func() any { return &generator{off: batch} }
	return p, nil
}

// Request sets the id.
func (p *RequestID) Request(c *httpx.Ctx) bool {
	if !p.overwrite {
		if v := c.Req.Header.Get(p.header); validID(v) {
			c.RequestID = v
			return false
		}
	}
	c.RequestID = p.NewID()
	c.Req.Header.Set(p.header, c.RequestID)
	return false
}

// Response puts the id on the response.
func (p *RequestID) Response(c *httpx.Ctx) {
	if c.RequestID != "" {
		c.Resp.Header.Set(p.header, c.RequestID)
	}
}

// NewID returns a fresh id of the configured algorithm.
func (p *RequestID) NewID() string {
	g := p.gens.Get().(*generator)
	var s string
	if p.nanoid {
		s = g.nanoid(p.size)
	} else {
		s = g.uuid()
	}
	p.gens.Put(g)
	return s
}

// generator hands out random bytes from a batch read from crypto/rand.
type generator struct {
	buf [batch]byte
	off int
}

func (g *generator) take(n int) []byte {
	if g.off+n > len(g.buf) {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+
		// crashes the program instead of returning an error).
		rand.Read(g.buf[:])
		g.off = 0
	}
	b := g.buf[g.off : g.off+n]
	g.off += n
	return b
}

const hexDigits = "0123456789abcdef"

// uuid returns a random (version 4, RFC 9562) UUID in its 36-byte form.
func (g *generator) uuid() string {
	r := g.take(16)
	r[6] = r[6]&0x0f | 0x40
	r[8] = r[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, b := range r {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexDigits[b>>4]
		out[j+1] = hexDigits[b&0x0f]
		j += 2
	}
	return string(out[:])
}

// nanoidAlphabet has 64 symbols, so a random byte masked to 6 bits picks
// one without bias.
const nanoidAlphabet = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"

func (g *generator) nanoid(size int) string {
	r := g.take(size)
	var out [maxNanoidSize]byte
	for i, b := range r {
		out[i] = nanoidAlphabet[b&63]
	}
	return string(out[:size])
}

// validID accepts a client id of 1 to 128 visible ASCII characters without
// spaces, quotes, commas or backslashes: safe in logs, headers and JSON.
func validID(s string) bool {
	if s == "" || len(s) > maxClientID {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || b == '"' || b == ',' || b == '\\' {
			return false
		}
	}
	return true
}
