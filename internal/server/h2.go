package server

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// h2Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffH2Preface reports whether the connection starts with the HTTP/2
// preface (h2c with prior knowledge, RFC 9113 §3.3). It only blocks for more
// bytes while everything received so far matches the preface, so a short
// HTTP/1.1 request is never held up.
func (c *conn) sniffH2Preface() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	n := min(len(b), len(h2Preface))
	if string(b[:n]) != h2Preface[:n] {
		return false
	}
	if n < len(h2Preface) {
		b, err := c.br.Peek(len(h2Preface))
		if err != nil || string(b) != h2Preface {
			return false
		}
	}
	return true
}

// tryH2CUpgrade switches an HTTP/1.1 request carrying "Upgrade: h2c" and
// one HTTP2-Settings field to HTTP/2 (RFC 7540 §3.2; deprecated by RFC 9113
// but the contract asks for it). Only bodiless requests are upgraded; for
// others the Upgrade is ignored, which §3.2 allows. It reports whether the
// connection was taken over. The request becomes stream 1 of the native
// HTTP/2 engine (h2conn.go).
func (c *conn) tryH2CUpgrade() bool {
	req := &c.ctx.Req
	if req.ContentLength != 0 || c.head.Chunked {
		return false
	}
	up := req.Header.Get("Upgrade")
	if !httpx.HasToken(up, "h2c") || req.Header.Count("HTTP2-Settings") != 1 {
		return false
	}
	if !httpx.HasToken(req.Header.Get("Connection"), "HTTP2-Settings") {
		return false
	}
	settings, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(req.Header.Get("HTTP2-Settings"), "="))
	if err != nil || len(settings)%6 != 0 {
		return false
	}
	c.bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		return true
	}
	c.setDeadline(time.Time{})
	c.serveH2(&h2Upgrade{settings: settings})
	return true
}
