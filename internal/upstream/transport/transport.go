// Package transport holds the clients the proxy uses to talk to one upstream
// addr: a lean HTTP/1.1 client (the per-request hot path) and an HTTP/2
// client built on net/http for `http2 = true` upstreams (gRPC).
//
// The HTTP/1.1 client writes the request and reads the response on the
// calling goroutine, over pooled keep-alive connections (a LIFO stack per
// addr, so the warmest connection is reused and the coldest ones age out).
// There are no per-connection goroutines and no channels: the cost of a
// round trip is the two syscalls plus parsing. See /work/shared/PERF-NOTES.md
// for why (http.Transport's readLoop/writeLoop hand-offs and allocations
// were a large part of a Go proxy's CPU).
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// Defaults used when a config value is zero (config fills them in, but a
// RoundTripper built directly, in tests or health checks, may not).
const (
	DefaultConnectionTimeout = 10 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultMaxIdleConns      = 128
)

// Stats is implemented by every RoundTripper New returns: dials counts
// connections opened, reused counts requests sent on a pooled connection
// (for HTTP/2: requests that did not need a new connection). Metrics export
// them per addr.
type Stats interface {
	Stats() (dials, reused uint64)
}

// New returns the RoundTripper for one addr of an upstream: HTTP/2 (over TLS
// with ALPN, or prior-knowledge h2c without TLS) when cfg.HTTP2 is set,
// HTTP/1.1 otherwise. Errors are config errors (unreadable tls_ca or client
// certificate) and name the key.
func New(cfg config.Upstream, addr string) (httpx.RoundTripper, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("addrs: %q: %w", addr, err)
	}
	var tlsConf *tls.Config
	if cfg.TLS {
		var err error
		if tlsConf, err = TLSConfig(cfg, addr); err != nil {
			return nil, err
		}
	}
	if cfg.HTTP2 {
		return newH2(cfg, addr, tlsConf), nil
	}
	if tlsConf != nil {
		tlsConf.NextProtos = []string{"http/1.1"}
	}
	return newH1(cfg, addr, tlsConf), nil
}

// TLSConfig builds the client TLS config for addr from the upstream's tls
// keys: SNI (sni, else the addr's host), insecure_skip_verify, tls_ca (the
// only roots trusted when set) and tls_client_cert/tls_client_key (mTLS).
func TLSConfig(cfg config.Upstream, addr string) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(addr)
	conf := &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if cfg.SNI != "" {
		conf.ServerName = cfg.SNI
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: %s: no PEM certificate found", cfg.TLSCA)
		}
		conf.RootCAs = pool
	}
	if cfg.TLSClientCert != "" || cfg.TLSClientKey != "" {
		if cfg.TLSClientCert == "" || cfg.TLSClientKey == "" {
			return nil, errors.New("tls_client_cert: tls_client_cert and tls_client_key go together")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSClientCert, cfg.TLSClientKey)
		if err != nil {
			return nil, fmt.Errorf("tls_client_cert: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

func orDuration(d config.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.D()
}

// Interface guards.
var (
	_ httpx.RoundTripper = (*h1)(nil)
	_ Stats              = (*h1)(nil)
	_ httpx.RoundTripper = (*h2)(nil)
	_ Stats              = (*h2)(nil)
)
