// Package bodylimit is the body_limit plugin: it refuses request bodies
// larger than max with 413. A declared Content-Length over max is refused
// before anything is read; a body of unknown length (chunked, HTTP/2 without
// content-length) is wrapped in a reader that fails with
// httpx.ErrBodyTooLarge once max is passed, which the proxy turns into 413
// when nothing was sent yet. The body is never buffered.
//
// NewReader is exported so the engine applies location client_max_body_size
// with the same reader.
package bodylimit

import (
	"fmt"
	"io"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "body_limit"

type options struct {
	Max config.Size `toml:"max"`
}

// Plugin limits request body sizes.
type Plugin struct {
	max int64
}

// New builds a body_limit plugin. Key: max (required, > 0).
func New(env plugin.Env, opts map[string]any) (plugin.Plugin, error) {
	var o options
	if err := config.DecodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if _, ok := opts["max"]; !ok {
		return nil, fmt.Errorf("max: required")
	}
	if o.Max <= 0 {
		return nil, fmt.Errorf("max: must be greater than 0")
	}
	return &Plugin{max: int64(o.Max)}, nil
}

// Request refuses a declared oversized body with 413 and wraps a body of
// unknown length.
func (p *Plugin) Request(c *httpx.Ctx) bool {
	switch {
	case c.Req.ContentLength > p.max:
		c.Error(413, "request body too large")
		return true
	case c.Req.ContentLength < 0 && c.Req.Body != nil:
		c.Req.Body = NewReader(c.Req.Body, p.max)
	}
	return false
}

// NewReader returns a reader that reads r and fails with
// httpx.ErrBodyTooLarge as soon as more than max bytes were read. Exactly max
// bytes followed by EOF is fine. The error is sticky.
func NewReader(r io.Reader, max int64) io.Reader {
	return &limitedReader{r: r, left: max}
}

type limitedReader struct {
	r    io.Reader
	left int64 // bytes still allowed
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for one byte more than allowed so a body of exactly max bytes is
	// told apart from a longer one.
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n = int(l.left)
		l.left = 0
		l.err = httpx.ErrBodyTooLarge
		return n, l.err
	}
	l.left -= int64(n)
	if err != nil {
		l.err = err
	}
	return n, err
}
