// Package compression is the compression plugin: it compresses response
// bodies with brotli, zstd or gzip, as negotiated with the client's
// Accept-Encoding (q-values honoured, q=0 refuses, "*" stands for any coding
// not listed; on equal q the preference is br, zstd, gzip).
//
// A response is left alone when: the request is HEAD; the status is 1xx,
// 204, 206 or 304; it has Content-Range or a Content-Encoding already;
// Cache-Control has no-transform (RFC 9110 7.7); its Content-Length is known
// and below min_length; its Content-Type is not in types; or it has no body.
// A compressed response gets Content-Encoding, loses Content-Length (the
// body streams, c.Resp.ContentLength = -1), and a strong ETag becomes weak
// (W/"..."): the bytes differ from the identity representation (RFC 9110
// 8.8.1). Every compressible response, compressed or not, gets
// Vary: Accept-Encoding so shared caches keep the variants apart.
//
// The body is compressed as it streams through a body filter: nothing is
// buffered beyond the encoder's window, and Flush flushes the encoder so
// server-sent events go out at once. Encoders are pooled per codec (one
// level per codec per plugin), so a request reuses one instead of
// allocating its multi-hundred-KB state.
package compression

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "compression"

// Defaults: a speed/size balance suited to on-the-fly compression.
const (
	DefaultGzipLevel = 6
	DefaultBrLevel   = 5
	DefaultZstdLevel = 3
	DefaultMinLength = 1024
	// brotliLGWin is the brotli window (512 KB, as ngx_brotli); zstdWindow
	// caps zstd's. Both bound the memory a pooled encoder holds.
	brotliLGWin = 19
	zstdWindow  = 1 << 20
)

// DefaultTypes are the content types compressed when types is not set.
// "text/*" matches a whole top-level type; "+json" matches a structured
// syntax suffix (application/problem+json).
var DefaultTypes = []string{
	"text/*", "application/json", "application/javascript", "application/xml",
	"image/svg+xml", "+json", "+xml",
}

type options struct {
	GzipLevel *int        `toml:"gzip_level"`
	BrLevel   *int        `toml:"br_level"`
	ZstdLevel *int        `toml:"zstd_level"`
	MinLength config.Size `toml:"min_length"`
	Types     []string    `toml:"types"`
}

// Codec indices, in preference order for equal q-values.
const (
	codecBr = iota
	codecZstd
	codecGzip
	numCodecs
)

var codecNames = [numCodecs]string{"br", "zstd", "gzip"}

type typeRule struct {
	kind  uint8 // 0 exact, 1 top-level prefix ("text/"), 2 suffix ("+json")
	value string
}

// Plugin is a configured compression plugin.
type Plugin struct {
	enabled   [numCodecs]bool
	minLength int64
	types     []typeRule
	filters   [numCodecs]httpx.BodyFilter
	pools     [numCodecs]sync.Pool
}

// New builds a compression plugin. Keys: gzip_level (0 off, 1-9, default
// 6), br_level (0 off, 1-11, default 5), zstd_level (0 off, 1-22, default
// 3), min_length (default "1KB"), types (default DefaultTypes).
func New(env plugin.Env, opts map[string]any) (plugin.Plugin, error) {
	var o options
	if err := config.DecodeOptions(opts, &o); err != nil {
		return nil, err
	}
	level := func(key string, v *int, def, max int) (int, error) {
		if v == nil {
			return def, nil
		}
		if *v < 0 || *v > max {
			return 0, fmt.Errorf("%s: %d out of range 0 (off) to %d", key, *v, max)
		}
		return *v, nil
	}
	gz, err := level("gzip_level", o.GzipLevel, DefaultGzipLevel, 9)
	if err != nil {
		return nil, err
	}
	br, err := level("br_level", o.BrLevel, DefaultBrLevel, 11)
	if err != nil {
		return nil, err
	}
	zs, err := level("zstd_level", o.ZstdLevel, DefaultZstdLevel, 22)
	if err != nil {
		return nil, err
	}
	p := &Plugin{minLength: DefaultMinLength}
	if _, ok := opts["min_length"]; ok {
		p.minLength = int64(o.MinLength)
	}
	types := o.Types
	if types == nil {
		types = DefaultTypes
	}
	for _, t := range types {
		r, err := parseType(t)
		if err != nil {
			return nil, fmt.Errorf("types: %w", err)
		}
		p.types = append(p.types, r)
	}
	p.enabled = [numCodecs]bool{br > 0, zs > 0, gz > 0}
	// Each pool's New builds one encoder at the configured level; the
	// filter funcs are made once here so installing one per request does
	// not allocate a closure.
	p.pools[codecGzip].New = func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, gz) // level validated above
		return &encWriter{enc: w}
	}
	p.pools[codecBr].New = func() any {
		return &encWriter{enc: brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{Quality: br, LGWin: brotliLGWin})}
	}
	zopts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(zs)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(zstdWindow),
	}
	if zs > 0 {
		// Fail at load rather than on the first request.
		e, err := zstd.NewWriter(nil, zopts...)
		if err != nil {
			return nil, fmt.Errorf("zstd_level: %w", err)
		}
		p.pools[codecZstd].Put(&encWriter{enc: e})
	}
	p.pools[codecZstd].New = func() any {
		e, _ := zstd.NewWriter(nil, zopts...) // options checked above
		return &encWriter{enc: e}
	}
	for i := range p.filters {
		pool := &p.pools[i]
		p.filters[i] = func(next httpx.BodyWriter) httpx.BodyWriter {
			w := pool.Get().(*encWriter)
			w.pool, w.next = pool, next
			w.enc.Reset(next)
			return w
		}
	}
	return p, nil
}

func parseType(t string) (typeRule, error) {
	t = strings.ToLower(strings.TrimSpace(t))
	switch {
	case strings.HasPrefix(t, "+") && len(t) > 1 && !strings.ContainsAny(t, "/*; "):
		return typeRule{kind: 2, value: t}, nil
	case strings.HasPrefix(t, "*/*+") && len(t) > 4:
		return typeRule{kind: 2, value: t[3:]}, nil
	case strings.HasSuffix(t, "/*") && len(t) > 2 && !strings.ContainsAny(t[:len(t)-2], "/*; "):
		return typeRule{kind: 1, value: t[:len(t)-1]}, nil
	}
	major, minor, ok := strings.Cut(t, "/")
	if !ok || major == "" || minor == "" || strings.ContainsAny(t, "*; ") || strings.Contains(minor, "/") {
		return typeRule{}, fmt.Errorf("%q is not a content type (want \"type/subtype\", \"type/*\" or \"+suffix\")", t)
	}
	return typeRule{kind: 0, value: t}, nil
}

// compressible reports whether a Content-Type value matches types.
func (p *Plugin) compressible(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return false
	}
	for _, r := range p.types {
		switch r.kind {
		case 0:
			if httpx.EqualFold(ct, r.value) {
				return true
			}
		case 1:
			if len(ct) > len(r.value) && httpx.EqualFold(ct[:len(r.value)], r.value) {
				return true
			}
		case 2:
			if len(ct) > len(r.value) && httpx.EqualFold(ct[len(ct)-len(r.value):], r.value) {
				return true
			}
		}
	}
	return false
}

// Request does nothing: compression acts on the response.
func (p *Plugin) Request(c *httpx.Ctx) bool { return false }

// Response decides whether to compress and installs the encoder.
func (p *Plugin) Response(c *httpx.Ctx) {
	r := &c.Resp
	if c.Req.Method == "HEAD" || r.Body == nil || r.Status < 200 || r.Status == 204 || r.Status == 206 || r.Status == 304 {
		return
	}
	if ce, ok := r.Header.Lookup("Content-Encoding"); ok && !httpx.EqualFold(strings.TrimSpace(ce), "identity") {
		return
	}
	if r.Header.Has("Content-Range") {
		return
	}
	if r.ContentLength >= 0 && r.ContentLength < p.minLength {
		return
	}
	if !p.compressible(r.Header.Get("Content-Type")) {
		return
	}
	noTransform := false
	r.Header.Values("Cache-Control", func(v string) bool {
		noTransform = httpx.HasToken(v, "no-transform")
		return !noTransform
	})
	if noTransform {
		return
	}
	addVary(&r.Header, "Accept-Encoding")
	codec := p.negotiate(&c.Req.Header)
	if codec < 0 {
		return
	}
	r.Header.Set("Content-Encoding", codecNames[codec])
	r.Header.Del("Content-Length")
	r.ContentLength = -1
	if etag, ok := r.Header.Lookup("ETag"); ok && strings.HasPrefix(etag, `"`) {
		r.Header.Set("ETag", "W/"+etag)
	}
	c.AddBodyFilter(p.filters[codec])
}

// negotiate picks a codec from Accept-Encoding, or -1. q-values are parsed
// as thousandths to stay in integers.
func (p *Plugin) negotiate(h *httpx.Header) int {
	q := [numCodecs]int{-1, -1, -1}
	star := -1
	h.Values("Accept-Encoding", func(v string) bool {
		for len(v) > 0 {
			var item string
			item, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(item, ";")
			name = strings.TrimSpace(name)
			qv := 1000
			if params != "" {
				qv = parseQ(params)
			}
			switch {
			case httpx.EqualFold(name, "br"):
				q[codecBr] = max(q[codecBr], qv)
			case httpx.EqualFold(name, "zstd"):
				q[codecZstd] = max(q[codecZstd], qv)
			case httpx.EqualFold(name, "gzip"), httpx.EqualFold(name, "x-gzip"):
				q[codecGzip] = max(q[codecGzip], qv)
			case name == "*":
				star = max(star, qv)
			}
		}
		return true
	})
	best, bestQ := -1, 0
	for i := 0; i < numCodecs; i++ {
		if !p.enabled[i] {
			continue
		}
		qi := q[i]
		if qi < 0 {
			qi = star
		}
		if qi > bestQ {
			best, bestQ = i, qi
		}
	}
	return best
}

// parseQ reads "q=0.5" among ";"-separated parameters, in thousandths. A
// malformed q counts as 0 (not acceptable).
func parseQ(params string) int {
	for len(params) > 0 {
		var prm string
		prm, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(prm), "=")
		if !ok || !httpx.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
		if v == "" || (v[0] != '0' && v[0] != '1') {
			return 0
		}
		n := int(v[0]-'0') * 1000
		if len(v) > 1 {
			if v[1] != '.' || len(v) > 5 {
				return 0
			}
			scale := 100
			for i := 2; i < len(v); i++ {
				if v[i] < '0' || v[i] > '9' {
					return 0
				}
				n += int(v[i]-'0') * scale
				scale /= 10
			}
		}
		if n > 1000 {
			return 0
		}
		return n
	}
	return 1000
}

// addVary adds token to Vary unless listed (or Vary is "*").
func addVary(h *httpx.Header, token string) {
	found := false
	h.Values("Vary", func(v string) bool {
		found = httpx.HasToken(v, token) || httpx.HasToken(v, "*")
		return !found
	})
	if !found {
		h.Add("Vary", token)
	}
}

// encoder is what gzip.Writer, brotli.Writer and zstd.Encoder share.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(w io.Writer)
}

// encWriter is the body filter: it compresses into next and goes back to
// its pool on Close.
type encWriter struct {
	enc  encoder
	next httpx.BodyWriter
	pool *sync.Pool
}

func (w *encWriter) Write(p []byte) (int, error) {
	if w.next == nil {
		return 0, io.ErrClosedPipe
	}
	return w.enc.Write(p)
}

// Flush pushes what the encoder holds to the client (SSE).
func (w *encWriter) Flush() error {
	if w.next == nil {
		return io.ErrClosedPipe
	}
	if err := w.enc.Flush(); err != nil {
		return err
	}
	return w.next.Flush()
}

// Close writes the encoder's tail, closes the next writer, and returns the
// encoder to its pool.
func (w *encWriter) Close() error {
	if w.next == nil {
		return nil
	}
	err := w.enc.Close()
	if cerr := w.next.Close(); err == nil {
		err = cerr
	}
	w.enc.Reset(io.Discard) // drop the reference to next
	w.next = nil
	if err == nil {
		w.pool.Put(w) // an encoder that failed may hold bad state: drop it
	}
	return err
}

var (
	_ plugin.Plugin          = (*Plugin)(nil)
	_ plugin.ResponseHandler = (*Plugin)(nil)
)
