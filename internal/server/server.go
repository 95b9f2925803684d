// Package server is pingap-go's own HTTP server engine: an HTTP/1.1 codec
// on one goroutine per busy connection (strict RFC 9112 parsing by
// httpx.ReadRequest, a reused httpx.Ctx, pooled buffers; idle connections
// park without buffers, and on Linux without a goroutine: park.go), and
// its own HTTP/2 engine for TLS (ALPN "h2") and cleartext h2c (h2conn.go:
// golang.org/x/net/http2's Framer and hpack for the wire, one reader
// goroutine per connection, a goroutine per active stream, pooled
// per-stream state, coalesced writes), both feeding the same Handler.
//
// It exists instead of net/http because the contract demands strict request
// hygiene (raw client bytes are never relayed) and because net/http's
// per-request allocations dominate a proxy's CPU (see
// /work/shared/PERF-NOTES.md).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// Handler answers requests. The Ctx (and every string in it) belongs to the
// server and is reused after ServeHTTPX returns.
type Handler interface {
	ServeHTTPX(c *httpx.Ctx)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *httpx.Ctx)

// ServeHTTPX calls f(c).
func (f HandlerFunc) ServeHTTPX(c *httpx.Ctx) { f(c) }

// Options configure a Server ([servers.NAME] in the contract). Zero values
// take the contract's defaults.
type Options struct {
	// Name is the [servers.NAME] name, copied into Ctx.Conn.Server.
	Name string
	// ReadHeaderTimeout bounds the time from when the server starts waiting
	// for a request head's first byte (a new connection) or receives it (a
	// keep-alive connection) until the head is complete (default 10s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection (default 120s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head; larger heads get 431 (default
	// 64KB).
	MaxHeaderBytes int
	// H2C accepts cleartext HTTP/2 on a plain listener: prior knowledge
	// (the connection preface) and "Upgrade: h2c".
	H2C bool
	// TLSConfig makes the server speak TLS; when its NextProtos contains
	// "h2", connections that negotiate h2 are served over HTTP/2.
	TLSConfig *tls.Config
	// Logger receives panics and connection errors (default slog.Default()).
	Logger *slog.Logger
	// OnConn, when set, is called with true when a connection opens and
	// false when it closes (metrics).
	OnConn func(open bool)
	// OnTLSHandshake, when set, is called after each successful TLS
	// handshake (metrics).
	OnTLSHandshake func()

	// idleRelease and sendTimeout override the package constants (tests);
	// sendTimeout bounds each write to and each body read from a client.
	idleRelease time.Duration
	sendTimeout time.Duration
	// noEpoll parks idle connections on goroutines even where the epoll
	// set is available (tests of that fallback).
	noEpoll bool
	// afterIdle, when set, runs on a connection's goroutine right after
	// it became idle (tests of the races with Shutdown).
	afterIdle func()
}

// Defaults from the contract's [servers.NAME] table.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

func (o Options) withDefaults() *Options {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.idleRelease <= 0 {
		o.idleRelease = idleRelease
	}
	if o.sendTimeout <= 0 {
		o.sendTimeout = sendTimeout
	}
	return &o
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// Server serves HTTP/1.1, HTTP/2 and h2c connections to one Handler.
type Server struct {
	handler Handler
	opts    atomic.Pointer[Options]

	pools bufPools
	// h2streams pools HTTP/2 stream state (h2stream) across connections.
	h2streams sync.Pool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	h2conns   map[*h2conn]struct{} // HTTP/2 connections, for GOAWAY
	closing   atomic.Bool
	gone      chan struct{} // closed once closing and the last conn is gone
	goneOnce  sync.Once

	// Idle connections parked without a goroutine (park.go): the epoll
	// set, made at the first park (nil where unavailable) and closed with
	// the last connection after Shutdown; parked counts the connections
	// in it; epoch is the base of their monotonic deadlines.
	pollOnce sync.Once
	poll     *poller
	parked   atomic.Int64
	epoch    time.Time

	// The disconnect watcher's sweep (watch.go): a timer that runs while
	// the list of connections that may be handling an HTTP/1 request is
	// not empty.
	sweep    *time.Timer
	watchMu  sync.Mutex
	watching []*watch
	sweeping bool // the sweep timer is armed (watchMu)
}

// New returns a server that answers with handler.
func New(handler Handler, opts Options) *Server {
	s := &Server{
		handler:   handler,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		h2conns:   map[*h2conn]struct{}{},
		gone:      make(chan struct{}),
		epoch:     time.Now(),
	}
	s.opts.Store(opts.withDefaults())
	s.sweep = time.AfterFunc(time.Hour, s.sweepWatches)
	s.sweep.Stop()
	return s
}

// SetOptions replaces the options atomically. New connections and the next
// request of existing ones use them; no listener or connection is closed
// (hot reload keeps unchanged listeners). An HTTP/2 connection keeps the
// options it started with.
func (s *Server) SetOptions(opts Options) {
	s.opts.Store(opts.withDefaults())
}

// Options returns the current options.
func (s *Server) Options() Options { return *s.opts.Load() }

// poller returns the server's epoll set of parked connections, made on
// first use; nil where there is none (then connections park on
// goroutines).
func (s *Server) poller() *poller {
	s.pollOnce.Do(func() {
		p, err := newPoller()
		if err != nil {
			s.opts.Load().Logger.Debug("idle connections park on goroutines", "err", err)
			return
		}
		s.poll = p
	})
	return s.poll
}

// mono is the monotonic time since s.epoch, in the unit of park deadlines.
func (s *Server) mono() int64 { return int64(time.Since(s.epoch)) }

// Conns reports the open client connections and how many of them are
// parked without a goroutine (metrics, tests).
func (s *Server) Conns() (open, parked int) {
	s.mu.Lock()
	open = len(s.conns)
	s.mu.Unlock()
	return open, int(s.parked.Load())
}

// markGone is called, under mu, once closing and the last connection is
// gone: Shutdown returns, the epoll set closes (no connection is left to
// park in it).
func (s *Server) markGone() {
	s.goneOnce.Do(func() {
		close(s.gone)
		if s.poll != nil {
			// Not inline: the last connection may be finished by the
			// poller goroutine itself (a parked client that closed),
			// and closing the epoll file waits for that goroutine's read.
			go s.poll.close()
		}
	})
}

// Serve accepts connections on ln until Shutdown or Close (it then returns
// ErrServerClosed) or until ln fails. It may be called for several
// listeners at once. TLS, when configured, is done here on each connection.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and friends: back off like
				// net/http does instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.opts.Load().Logger.Warn("accept failed; retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return ErrServerClosed
		}
		if opts := s.opts.Load(); opts.TLSConfig == nil && !opts.noEpoll {
			// Plain TCP: the connection waits for its first byte parked,
			// without a goroutine (a burst of idle connections costs no
			// stacks).
			c.setup(opts)
			if c.parkEpoll(time.Now().Add(opts.ReadHeaderTimeout)) {
				continue
			}
			go c.serveSetUp()
			continue
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.closing.Load() && len(s.conns) == 0 {
		s.markGone()
	}
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle keep-alive connections, tells HTTP/2
// clients to go away, lets in-flight requests finish (their connections
// close after the response) and returns once every connection is gone. At
// ctx's end it closes what is left and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	if len(s.conns) == 0 {
		s.markGone()
	}
	h2s := make([]*h2conn, 0, len(s.h2conns))
	for h := range s.h2conns {
		h2s = append(h2s, h)
	}
	s.mu.Unlock()

	// GOAWAY to HTTP/2 connections: they close once their streams are
	// done (a connection that turns HTTP/2 later sees closing itself).
	for _, h := range h2s {
		h.startGoAway()
	}

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case <-s.gone:
			return nil
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes connections waiting for a request. A connection that
// receives a request at the same instant either wins (the request is served,
// then the connection closes) or loses (it is closed unanswered, which
// clients retry on a reused connection, RFC 9112 §9.3.1).
//
// A connection becomes idle before its last response is flushed (the
// flush goes with the wait for the next request: canSendRead), so one with a
// goroutine is only shut for reading: the flush still goes out, and the
// wait, or the read after it, sees EOF and finishes the connection.
func (s *Server) closeIdle() {
	var parked []*conn
	s.mu.Lock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			if c.unpark() {
				// A parked connection has no goroutine to see a close
				// (and nothing left to write).
				c.nc.Close()
				parked = append(parked, c)
			} else if cr, ok := c.nc.(interface{ CloseRead() error }); !ok || cr.CloseRead() != nil {
				c.nc.Close()
			}
		}
	}
	s.mu.Unlock()
	for _, c := range parked {
		c.finish()
	}
}

func (s *Server) closeAll() {
	var parked []*conn
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.nc.Close()
		if c.unpark() {
			parked = append(parked, c)
		}
	}
	s.mu.Unlock()
	for _, c := range parked {
		c.finish()
	}
}

// Close closes listeners and every connection at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.closeAll()
}
