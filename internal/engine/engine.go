// Package engine turns configurations into running state: it compiles a
// config into an immutable Snapshot (routers, plugin chains, upstream pools),
// publishes it through one atomic pointer that every request reads, opens and
// closes listeners to match the config, and applies reloads all or nothing.
// Live state (upstream health, pooled connections, plugin state of unchanged
// plugins) outlives snapshots.
package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/certs"
	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/logging"
	"github.com/pingap-go/pingap/internal/metrics"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/catalog"
	"github.com/pingap-go/pingap/internal/proxy"
	"github.com/pingap-go/pingap/internal/server"
	"github.com/pingap-go/pingap/internal/server/http3"
	"github.com/pingap-go/pingap/internal/tracing"
	"github.com/pingap-go/pingap/internal/upstream"
	"github.com/pingap-go/pingap/internal/upstream/health"
	"github.com/pingap-go/pingap/internal/upstream/transport"
)

// Options configure an Engine.
type Options struct {
	// Name is basic.name at start (the pingap_info metric).
	Name     string
	Logger   *slog.Logger
	LogLevel *slog.LevelVar
	// Load reads the configuration from its source (file, folder, etcd);
	// Reload calls it.
	Load func() (*config.Config, error)
	// Listen opens a listener; it defaults to net.Listen. A graceful binary
	// upgrade passes one that hands out inherited sockets first.
	Listen func(network, addr string) (net.Listener, error)
	// Admin builds the handler of the admin web UI and API (internal/admin)
	// for this engine; it is served on basic.admin_addr by its own net/http
	// server, like metrics, so admin requests never reach the proxy's
	// request metrics. Nil: no admin server even when admin_addr is set.
	Admin func(*Engine) http.Handler
	// Applied, when set, is called after every successful Apply (a reload
	// from any source: SIGHUP, auto_reload, the admin API, etcd) with the
	// configuration now running, in the order they were applied. It must
	// not call back into the Engine. The command uses it to turn the
	// auto_reload watcher on or off as the running config says.
	Applied func(*config.Config)
}

// Engine runs configurations.
type Engine struct {
	snap atomic.Pointer[Snapshot]
	// copyBufs holds the 32 KB buffers response bodies are copied through.
	copyBufs  sync.Pool
	accessLog atomic.Pointer[*logging.AccessLog]
	tracer    atomic.Pointer[tracing.Tracer]

	opts     Options
	log      *slog.Logger
	metrics  *metrics.Metrics
	registry *upstream.Registry
	checker  *health.Checker
	proxy    *proxy.Proxy
	certs    *certs.Store
	// acme answers ACME HTTP-01 challenges on plain-HTTP servers before
	// routing (nil: none).
	acme func(c *httpx.Ctx) bool

	mu         sync.Mutex // serializes Start, Apply and Shutdown
	closed     bool       // Shutdown ran: no more reloads
	listeners  map[string]*listener
	metricsSrv *auxServer
	adminSrv   *auxServer
	admin      http.Handler
	accessPath string
	tracingCfg config.Tracing
	// tlsBases is the listener tls.Config of each TLS server, reused across
	// reloads so session ticket keys survive them (see activate).
	tlsBases map[string]*tls.Config
}

type listener struct {
	name    string
	addr    string
	ln      net.Listener
	srv     *server.Server
	handler *serverHandler
	done    chan struct{}
	// HTTP/3 on the same port over UDP, when the server has http3 = true.
	h3   *http3.Server
	h3pc net.PacketConn
	// h3Retiring is the HTTP/3 server a reload turned off, still draining
	// on (and holding) the UDP socket; nil when none.
	h3Retiring *retiringH3
}

// retiringH3 is an HTTP/3 server being shut down gracefully; done is
// closed once its socket is released.
type retiringH3 struct {
	srv  *http3.Server
	pc   net.PacketConn
	done chan struct{}
}

// release cuts the graceful drain short so the UDP port can be bound
// again (a reload turning HTTP/3 back on), waiting a bounded time.
func (r *retiringH3) release() {
	r.srv.Close()
	r.pc.Close()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
	}
}

// New returns an engine; Start runs the first configuration.
func New(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Listen == nil {
		opts.Listen = net.Listen
	}
	e := &Engine{
		opts:      opts,
		log:       opts.Logger,
		listeners: make(map[string]*listener),
	}
	e.metrics = metrics.New(opts.Name)
	e.registry = upstream.NewRegistry(transport.New, e.log)
	e.checker = health.New(e.log, e.onHealthChange)
	e.proxy = proxy.New(e.log)
	e.copyBufs.New = func() any { b := make([]byte, 32<<10); return &b }
	e.certs = certs.NewStore(e.log, func(name string, notAfter time.Time) {
		if !notAfter.IsZero() {
			e.metrics.SetCertificateExpiry(name, notAfter)
		}
	})
	e.acme = e.certs.HandleHTTPChallenge
	if opts.Admin != nil {
		e.admin = opts.Admin(e)
	}
	return e
}

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *metrics.Metrics { return e.metrics }

// Snapshot returns the live snapshot.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Registry returns the upstream live-state registry (admin API).
func (e *Engine) Registry() *upstream.Registry { return e.registry }

func (e *Engine) onHealthChange(up, addr string, healthy bool) {
	e.metrics.UpstreamAddr(up, addr).SetHealth(healthy)
}

// Start compiles and runs cfg: listeners, health checks, metrics.
func (e *Engine) Start(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	snap, err := e.buildSnapshot(cfg, nil)
	if err != nil {
		return err
	}
	if err := e.activate(snap, nil); err != nil {
		return err
	}
	return nil
}

// Reload re-reads the configuration from its source and applies it. A
// failure leaves the running configuration untouched.
func (e *Engine) Reload() error {
	if e.opts.Load == nil {
		return errors.New("no configuration source")
	}
	cfg, err := e.opts.Load()
	if err != nil {
		e.metrics.ConfigReload(false)
		e.log.Error("reload failed; the running configuration stays", slog.String("error", err.Error()))
		return err
	}
	return e.Apply(cfg)
}

// Apply replaces the running configuration by cfg, all or nothing: the new
// snapshot is built and its listeners opened before anything changes; on
// any error the old configuration keeps serving.
func (e *Engine) Apply(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("shutting down: reload ignored")
	}
	old := e.snap.Load()
	snap, err := e.buildSnapshot(cfg, old)
	if err == nil {
		err = e.activate(snap, old)
	}
	if err != nil {
		e.metrics.ConfigReload(false)
		e.log.Error("reload failed; the running configuration stays", slog.String("error", err.Error()))
		return err
	}
	e.metrics.ConfigReload(true)
	e.log.Info("configuration reloaded", slog.String("source", cfg.Source))
	if e.opts.Applied != nil {
		e.opts.Applied(cfg)
	}
	return nil
}

// activate makes snap live: open new listeners first (so a bad addr fails
// the whole reload), swap the snapshot, then retire what the old one had.
func (e *Engine) activate(snap *Snapshot, old *Snapshot) error {
	cfg := snap.cfg
	// A server renamed on the same addr keeps its listener: find listeners
	// of servers that go away whose addr a new server takes over.
	renamed := map[string]*listener{}
	claimed := map[*listener]bool{}
	for _, name := range sortedKeys(cfg.Servers) {
		if e.listeners[name] != nil {
			continue
		}
		for _, oldName := range sortedKeys(e.listeners) {
			l := e.listeners[oldName]
			if _, kept := cfg.Servers[oldName]; !kept && !claimed[l] && l.addr == cfg.Servers[name].Addr {
				renamed[name] = l
				claimed[l] = true
				break
			}
		}
	}
	current := func(name string) *listener {
		if l := renamed[name]; l != nil {
			return l
		}
		return e.listeners[name]
	}
	// Open listeners of new servers and servers whose addr changed.
	opened := map[string]*listener{}
	for _, name := range sortedKeys(cfg.Servers) {
		sc := cfg.Servers[name]
		if l := current(name); l != nil && l.addr == sc.Addr {
			continue
		}
		ln, err := e.listen(name, sc)
		if err != nil {
			for _, l := range opened {
				l.ln.Close()
			}
			return fmt.Errorf("servers.%s: addr: %w", name, err)
		}
		opened[name] = ln
	}
	// HTTP/3 sockets for new listeners and for listeners that turn it on.
	h3Sockets := map[string]net.PacketConn{}
	closeOpened := func() {
		for _, l := range opened {
			l.ln.Close()
		}
		for _, pc := range h3Sockets {
			pc.Close()
		}
	}
	for _, name := range sortedKeys(cfg.Servers) {
		sc := cfg.Servers[name]
		if !sc.HTTP3 || !sc.TLSEnabled() {
			continue
		}
		if l := current(name); opened[name] == nil && l != nil && l.h3pc != nil {
			continue // already serving HTTP/3 on this addr
		}
		if l := e.listeners[name]; opened[name] == nil && l != nil && l.h3Retiring != nil {
			// HTTP/3 turned back on while the previous server still drains
			// on the port: close it now, or the bind below fails.
			l.h3Retiring.release()
			l.h3Retiring = nil
		}
		pc, err := http3.Listen(sc.Addr)
		if err != nil {
			closeOpened()
			return fmt.Errorf("servers.%s: http3: %w", name, err)
		}
		h3Sockets[name] = pc
	}
	if err := e.certs.Update(cfg); err != nil {
		closeOpened()
		return err
	}
	tlsConfigs := map[string]*tls.Config{}
	for _, name := range sortedKeys(cfg.Servers) {
		sc := cfg.Servers[name]
		if !sc.TLSEnabled() {
			continue
		}
		tc, err := e.certs.TLSConfig(name, sc)
		if err != nil {
			closeOpened()
			if old != nil {
				e.certs.Update(old.cfg) // back to the certificates still serving
			}
			return fmt.Errorf("servers.%s: %w", name, err)
		}
		// Keep the server's first base config: crypto/tls keeps the
		// (auto-rotated) session ticket keys on it, so a new one per reload
		// would break every client's resumption. Handshakes read the
		// store's current certificates and client CAs through it anyway.
		if prev := e.tlsBases[name]; prev != nil {
			tc = prev
		}
		tlsConfigs[name] = tc
	}
	// Everything that can fail has been done: swap.
	e.tlsBases = tlsConfigs
	e.applyBasic(cfg)
	e.snap.Store(snap)

	pools := make([]*upstream.Pool, 0, len(snap.pools))
	for _, name := range sortedKeys(snap.pools) {
		pools = append(pools, snap.pools[name])
	}
	e.registry.Commit(pools)
	e.checker.Sync(pools)

	for name, l := range renamed {
		delete(e.listeners, l.name)
		e.log.Info("listener renamed", slog.String("from", l.name), slog.String("to", name), slog.String("addr", l.addr))
		l.name = name
		l.handler.name.Store(&name)
		e.listeners[name] = l
	}
	for name, sc := range cfg.Servers {
		opts := e.serverOptions(name, sc)
		opts.TLSConfig = tlsConfigs[name]
		if l, ok := opened[name]; ok {
			if prev := e.listeners[name]; prev != nil {
				go e.drain(prev, cfg.Basic.GracePeriod.D())
			}
			l.handler = newServerHandler(e, name)
			l.srv = server.New(l.handler, opts)
			e.listeners[name] = l
			go e.serve(l)
			if pc := h3Sockets[name]; pc != nil {
				l.h3pc = pc
				e.startH3(l, sc, tlsConfigs[name])
			}
			continue
		}
		l := e.listeners[name]
		l.srv.SetOptions(opts)
		if pc := h3Sockets[name]; pc != nil {
			l.h3pc = pc
			e.startH3(l, sc, tlsConfigs[name])
		} else if l.h3 != nil && (!sc.HTTP3 || !sc.TLSEnabled()) {
			e.stopH3(l)
		}
	}
	for name, l := range e.listeners {
		if _, ok := cfg.Servers[name]; !ok {
			delete(e.listeners, name)
			go e.drain(l, cfg.Basic.GracePeriod.D())
		}
	}
	e.retainMetrics(snap)
	if old != nil {
		e.retirePlugins(old, snap, cfg.Basic.GracePeriod.D())
	}
	return nil
}

func (e *Engine) listen(name string, sc config.Server) (*listener, error) {
	ln, err := e.opts.Listen("tcp", sc.Addr)
	if err != nil {
		return nil, err
	}
	return &listener{name: name, addr: sc.Addr, ln: ln, done: make(chan struct{})}, nil
}

func (e *Engine) serve(l *listener) {
	defer close(l.done)
	e.log.Info("listening", slog.String("server", l.name), slog.String("addr", l.ln.Addr().String()))
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, server.ErrServerClosed) {
		e.log.Error("server stopped", slog.String("server", l.name), slog.String("error", err.Error()))
	}
}

// drain stops a listener that a reload removed or moved: it stops accepting
// at once and lets its requests finish within the grace period.
func (e *Engine) drain(l *listener, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if l.h3 != nil {
		go l.h3.Shutdown(ctx)
	}
	l.srv.Shutdown(ctx)
	if l.h3pc != nil {
		l.h3pc.Close()
	}
	e.log.Info("listener closed", slog.String("server", l.name), slog.String("addr", l.addr))
}

// startH3 serves HTTP/3 for l on its UDP socket with the same handler.
func (e *Engine) startH3(l *listener, sc config.Server, tc *tls.Config) {
	h3, err := http3.New(http3.Options{
		TLSConfig:      tc,
		Handler:        server.HTTPHandler(l.handler, l.name),
		IdleTimeout:    sc.IdleTimeout.D(),
		MaxHeaderBytes: int(sc.MaxHeaderBytes),
		Logger:         e.log,
		OnTLSHandshake: func() { e.metrics.TLSHandshake(l.name) },
	})
	if err != nil {
		e.log.Error("http3", slog.String("server", l.name), slog.String("error", err.Error()))
		l.h3pc.Close()
		l.h3pc = nil
		return
	}
	l.h3 = h3
	pc := l.h3pc
	go func() {
		e.log.Info("listening", slog.String("server", l.name), slog.String("addr", pc.LocalAddr().String()), slog.String("protocol", "h3"))
		if err := h3.Serve(pc); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			e.log.Error("http3 stopped", slog.String("server", l.name), slog.String("error", err.Error()))
		}
	}()
}

func (e *Engine) stopH3(l *listener) {
	r := &retiringH3{srv: l.h3, pc: l.h3pc, done: make(chan struct{})}
	l.h3, l.h3pc, l.h3Retiring = nil, nil, r
	go func() {
		defer close(r.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.srv.Shutdown(ctx)
		r.pc.Close()
	}()
}

func (e *Engine) serverOptions(name string, sc config.Server) server.Options {
	return server.Options{
		Name:              name,
		ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
		IdleTimeout:       sc.IdleTimeout.D(),
		MaxHeaderBytes:    int(sc.MaxHeaderBytes),
		H2C:               sc.H2C,
		Logger:            e.log,
		OnConn:            e.metrics.ConnHook(name),
		OnTLSHandshake:    func() { e.metrics.TLSHandshake(name) },
	}
}

// applyBasic applies the [basic] settings that can change at runtime.
func (e *Engine) applyBasic(cfg *config.Config) {
	b := cfg.Basic
	if e.opts.LogLevel != nil {
		e.opts.LogLevel.Set(logging.ParseLevel(b.LogLevel))
	}
	// Access log: reopen only when the target changed.
	target := ""
	if b.AccessLog.Enabled {
		target = b.AccessLog.Path
		if target == "" {
			target = "-"
		}
	}
	if target != e.accessPath {
		var al *logging.AccessLog
		if target != "" {
			var err error
			al, err = logging.NewAccessLog(target)
			if err != nil {
				e.log.Error("access log", slog.String("path", target), slog.String("error", err.Error()))
			}
		}
		if prev := e.accessLog.Swap(&al); prev != nil && *prev != nil {
			go func(p *logging.AccessLog) { time.Sleep(time.Second); p.Close() }(*prev)
		}
		e.accessPath = target
	}
	if cfg.Tracing != e.tracingCfg {
		tc := cfg.Tracing
		if tc.ServiceName == "" {
			tc.ServiceName = b.Name
		}
		tr, err := tracing.New(tc, b.Name, tracing.WithLogger(e.log))
		if err != nil {
			e.log.Error("tracing", slog.String("endpoint", tc.Endpoint), slog.String("error", err.Error()))
		} else {
			if old := e.tracer.Swap(tr); old != nil {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					old.Shutdown(ctx)
				}()
			}
			e.tracingCfg = cfg.Tracing
			if tr != nil {
				e.log.Info("tracing enabled", slog.String("endpoint", tc.Endpoint), slog.Float64("sample_ratio", tc.SampleRatio))
			}
		}
	}
	if b.MetricsAddr != e.metricsSrv.addrOrEmpty() {
		if e.metricsSrv != nil {
			e.metricsSrv.close()
			e.metricsSrv = nil
		}
		if b.MetricsAddr != "" {
			mux := http.NewServeMux()
			mux.Handle("/metrics", e.metrics.Handler())
			s, err := startAux(b.MetricsAddr, mux, e.opts.Listen)
			if err != nil {
				e.log.Error("metrics listener", slog.String("addr", b.MetricsAddr), slog.String("error", err.Error()))
			} else {
				e.metricsSrv = s
				e.log.Info("metrics listening", slog.String("addr", b.MetricsAddr))
			}
		}
	}
	e.applyAdmin(b.AdminAddr)
}

// applyAdmin (re)starts the admin server when admin_addr changed. The old
// server is closed in the background: the request that changed admin_addr
// (an admin PUT) runs on it and is still waiting for its answer.
func (e *Engine) applyAdmin(addr string) {
	if e.admin == nil || addr == e.adminSrv.addrOrEmpty() {
		return
	}
	if old := e.adminSrv; old != nil {
		e.adminSrv = nil
		go old.close()
	}
	if addr == "" {
		return
	}
	s, err := startAux(addr, e.admin, e.opts.Listen)
	if err != nil {
		e.log.Error("admin listener", slog.String("addr", addr), slog.String("error", err.Error()))
		return
	}
	e.adminSrv = s
	e.log.Info("admin listening", slog.String("addr", s.ln.Addr().String()))
}

// ReopenAccessLog reopens a file access log (SIGUSR1, logrotate).
func (e *Engine) ReopenAccessLog() {
	if al := e.accessLog.Load(); al != nil && *al != nil {
		if err := (*al).Reopen(); err != nil {
			e.log.Error("reopen access log", slog.String("error", err.Error()))
		}
	}
}

// retainMetrics drops series of servers, locations and addrs the new
// snapshot no longer has.
func (e *Engine) retainMetrics(snap *Snapshot) {
	var locs, addrs [][2]string
	for sname, sc := range snap.cfg.Servers {
		locs = append(locs, [2]string{sname, ""})
		for _, l := range sc.Locations {
			locs = append(locs, [2]string{sname, l})
		}
	}
	for name, p := range snap.pools {
		for _, h := range p.Hosts {
			addrs = append(addrs, [2]string{name, h.Addr})
		}
	}
	e.metrics.Retain(locs, addrs)
	e.metrics.RetainPlugins(sortedKeys(snap.plugins))
	var certNames []string
	for name := range snap.cfg.Certificates {
		certNames = append(certNames, name)
	}
	for name, sc := range snap.cfg.Servers {
		if sc.TLSCert != "" {
			certNames = append(certNames, "servers."+name)
		}
	}
	e.metrics.RetainCertificates(certNames)
}

// retirePlugins closes plugins of old that snap no longer uses, after the
// grace period (in-flight requests of the old snapshot may still run them).
func (e *Engine) retirePlugins(old, snap *Snapshot, grace time.Duration) {
	var retired []plugin.Closer
	for name, pi := range old.plugins {
		if cur := snap.plugins[name]; cur == pi {
			continue
		}
		if c, ok := pi.plugin.(plugin.Closer); ok {
			retired = append(retired, c)
		}
	}
	if len(retired) == 0 {
		return
	}
	go func() {
		time.Sleep(grace)
		for _, c := range retired {
			c.Close()
		}
	}()
}

// Shutdown stops accepting, waits for in-flight requests up to ctx's
// deadline, then stops health checks and background work.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	var wg sync.WaitGroup
	names := make([]string, 0, len(e.listeners))
	for name := range e.listeners {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		l := e.listeners[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.h3 != nil {
				go l.h3.Shutdown(ctx)
			}
			l.srv.Shutdown(ctx)
			if l.h3pc != nil {
				l.h3pc.Close()
			}
		}()
	}
	wg.Wait()
	e.checker.Stop()
	if e.metricsSrv != nil {
		e.metricsSrv.close()
	}
	if e.adminSrv != nil {
		e.adminSrv.close()
	}
	if al := e.accessLog.Load(); al != nil && *al != nil {
		(*al).Close()
	}
	if snap := e.snap.Load(); snap != nil {
		for _, pi := range snap.plugins {
			if c, ok := pi.plugin.(plugin.Closer); ok {
				c.Close()
			}
		}
	}
	e.registry.Commit(nil)
	e.certs.Close()
	if tr := e.tracer.Load(); tr != nil {
		tr.Shutdown(ctx)
	}
	return ctx.Err()
}

// Addr returns the bound address of a server's listener ("" when none), for
// tests that listen on port 0.
func (e *Engine) Addr(server string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l := e.listeners[server]; l != nil {
		return l.ln.Addr().String()
	}
	return ""
}

// auxServer is a small net/http server (metrics, admin).
type auxServer struct {
	addr string
	srv  *http.Server
	ln   net.Listener
}

func startAux(addr string, h http.Handler, listen func(string, string) (net.Listener, error)) (*auxServer, error) {
	ln, err := listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &auxServer{addr: addr, ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *auxServer) addrOrEmpty() string {
	if s == nil {
		return ""
	}
	return s.addr
}

func (s *auxServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// CheckPlugins builds every plugin of cfg once (and closes it) and returns
// the problems with their options, located like config errors. It works on a
// config that failed validation, for `pingap -t` to list every problem.
func CheckPlugins(cfg *config.Config) error {
	var errs config.Errors
	for _, name := range sortedKeys(cfg.Plugins) {
		pc := cfg.Plugins[name]
		p, err := catalog.Build(plugin.Env{Name: name, Logger: slog.New(slog.DiscardHandler)}, pc.Category, pc.Options)
		if err != nil {
			section := config.Section("plugins", name)
			errs.Append(cfg.FileOf(section), section, err)
			continue
		}
		if c, ok := p.(plugin.Closer); ok {
			c.Close()
		}
	}
	return errs.Err()
}

// Check compiles cfg the way Start would, without opening anything: plugin
// options, routers and upstream pools are validated (pingap -t).
func Check(cfg *config.Config) error {
	if err := certs.Check(cfg); err != nil {
		return err
	}
	e := New(Options{Logger: slog.New(slog.DiscardHandler)})
	defer e.certs.Close()
	snap, err := e.buildSnapshot(cfg, nil)
	if err != nil {
		return err
	}
	snap.closePlugins(nil)
	return nil
}

// Listeners returns every socket the engine listens on (servers, metrics,
// admin), for a graceful binary upgrade that hands them to a new process.
func (e *Engine) Listeners() []net.Listener {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []net.Listener
	for _, name := range sortedKeys(e.listeners) {
		out = append(out, e.listeners[name].ln)
	}
	if e.metricsSrv != nil {
		out = append(out, e.metricsSrv.ln)
	}
	if e.adminSrv != nil {
		out = append(out, e.adminSrv.ln)
	}
	return out
}
