// Package http3 serves HTTP/3 (RFC 9114, over QUIC) for a TLS server with
// http3 = true, on UDP at the same port as its TCP listener, using
// quic-go's http3 package. The TCP side advertises it with an Alt-Svc
// header (AltSvc) so browsers switch over.
//
// The TLS config is the listener's config from certs.Store.TLSConfig: SNI
// selection, hot-reloaded certificates and client_ca apply to QUIC
// handshakes too (quic-go replaces ALPN with "h3" and forces TLS 1.3).
package http3

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// AltSvcMaxAge is how long (seconds) clients may remember the Alt-Svc
// announcement: one day, so an operator who turns http3 off is not stuck
// with clients retrying QUIC for a month.
const AltSvcMaxAge = 86400

// AltSvc returns the Alt-Svc header value announcing HTTP/3 on port, e.g.
// `h3=":443"; ma=86400` (RFC 7838 §3). Compute it once per listener.
func AltSvc(port int) string {
	return `h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(AltSvcMaxAge)
}

// Options configure a Server.
type Options struct {
	// TLSConfig is required: the TLS server's config (certs.Store.TLSConfig).
	TLSConfig *tls.Config
	// Handler answers requests; for the proxy, server.HTTPHandler(engine, name).
	Handler http.Handler
	// IdleTimeout closes connections without requests for that long
	// (servers.idle_timeout); 0 = 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's HEADERS frame (servers.max_header_bytes);
	// 0 = 64KB.
	MaxHeaderBytes int
	// Logger receives quic-go's own logs; nil discards them.
	Logger *slog.Logger
	// OnTLSHandshake, when set, is called once per accepted QUIC connection
	// (its TLS 1.3 handshake is complete then: 0-RTT is off), like the
	// TCP side's OnTLSHandshake (metrics).
	OnTLSHandshake func()
}

// Server is one HTTP/3 listener.
type Server struct {
	srv *qhttp3.Server
}

// New returns a Server; start it with Serve.
func New(o Options) (*Server, error) {
	if o.TLSConfig == nil {
		return nil, errors.New("http3: TLSConfig is required")
	}
	if o.Handler == nil {
		return nil, errors.New("http3: Handler is required")
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var connContext func(context.Context, *quic.Conn) context.Context
	if hook := o.OnTLSHandshake; hook != nil {
		connContext = func(ctx context.Context, _ *quic.Conn) context.Context {
			hook()
			return ctx
		}
	}
	return &Server{srv: &qhttp3.Server{
		ConnContext:    connContext,
		TLSConfig:      o.TLSConfig,
		Handler:        o.Handler,
		IdleTimeout:    o.IdleTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
		QUICConfig: &quic.Config{
			MaxIdleTimeout:  o.IdleTimeout,
			KeepAlivePeriod: 0,
			Allow0RTT:       false, // 0-RTT requests are replayable; the proxy forwards non-idempotent ones
		},
		Logger: o.Logger,
	}}, nil
}

// Listen opens the UDP socket for addr (the TLS server's addr).
func Listen(addr string) (net.PacketConn, error) {
	return net.ListenPacket("udp", addr)
}

// Serve answers HTTP/3 on pc until Close or Shutdown; it then returns
// http.ErrServerClosed. The caller closes pc after Serve returned.
func (s *Server) Serve(pc net.PacketConn) error {
	return s.srv.Serve(pc)
}

// Shutdown stops accepting, sends GOAWAY and waits for in-flight requests
// until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// Close closes every connection at once.
func (s *Server) Close() error {
	return s.srv.Close()
}
