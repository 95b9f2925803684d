// Package admin serves the admin web UI and API on basic.admin_addr (see
// docs/admin.md and the contract's "Admin" section): the running config as
// JSON or TOML, a whole-config PUT that is validated, applied with zero
// downtime and persisted to its source, upstream live state, and a reload
// from the source. The dashboard is plain HTML/CSS/JS embedded from web/.
//
// The handler runs on its own net/http server started by the engine (like
// metrics), so admin traffic never shows in the proxy's request metrics.
// It reaches the engine only through Runtime, which keeps it testable with a
// fake and keeps the import direction cmd -> admin -> engine.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/upstream"
)

//go:embed web
var webFS embed.FS

// DefaultMaxBodyBytes bounds a PUT /api/config body.
const DefaultMaxBodyBytes = 8 << 20

// Runtime is what the admin API needs from the running proxy. The engine
// adapter is ForEngine; tests use fakes.
type Runtime interface {
	// Config returns the running configuration; callers must not modify
	// it. Nil before the first configuration is live.
	Config() *config.Config
	// Apply replaces the running configuration, all or nothing: on error
	// the old one keeps serving.
	Apply(cfg *config.Config) error
	// Reload re-reads the configuration source and applies it.
	Reload() error
	// Upstreams reports every upstream and addr with health, in-flight and
	// counts.
	Upstreams() []upstream.UpstreamStatus
	// CheckPlugins returns the problems with cfg's plugin options, which
	// only the plugin builders check; for a config that failed validation,
	// so that a PUT lists every problem at once (like pingap -t).
	CheckPlugins(cfg *config.Config) error
	// ReloadFailed records a reload attempt that failed before Apply (a PUT
	// body that does not parse or validate), so config_reloads_total counts
	// every admin attempt.
	ReloadFailed(err error)
}

// Options configure the admin handler.
type Options struct {
	Logger *slog.Logger
	// Persist writes the TOML of a config applied by PUT /api/config back to
	// its source (PersistFile for a file; an etcd writer for etcd). Nil:
	// the source cannot be written, and PUT answers 409 without changing
	// anything.
	Persist func(toml []byte) error
	// MaxBodyBytes bounds a PUT body (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
}

// Handler is the admin web UI and API.
type Handler struct {
	rt      Runtime
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	csrf    *http.CrossOriginProtection
	started time.Time

	// mu serializes the changing requests (PUT, reload), so that two PUTs
	// are applied and persisted in the same order.
	mu sync.Mutex
}

// New returns the admin handler for rt.
func New(rt Runtime, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &Handler{rt: rt, opts: opts, log: opts.Logger, mux: http.NewServeMux(),
		csrf: http.NewCrossOriginProtection(), started: time.Now()}
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(web)
	// The web UI's files sit at the top level ("/", "/app.js"), so that a
	// wrong method on an API path gets 405 rather than the file server's 404.
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	h.mux.Handle("GET /{$}", static)
	h.mux.Handle("GET /{file}", static)
	h.mux.HandleFunc("GET /api/config", h.getConfig)
	h.mux.HandleFunc("PUT /api/config", h.putConfig)
	h.mux.HandleFunc("GET /api/upstreams", h.getUpstreams)
	h.mux.HandleFunc("GET /api/status", h.getStatus)
	h.mux.HandleFunc("POST /api/reload", h.postReload)
	return h
}

// ServeHTTP checks access (credentials, or a loopback Host without them;
// cross-origin browser writes are refused), then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	hd.Set("Referrer-Policy", "no-referrer")
	cfg := h.rt.Config()
	if cfg == nil {
		writeErrors(w, http.StatusServiceUnavailable, []string{"starting: no configuration is live yet"})
		return
	}
	b := cfg.Basic
	if b.AdminUser != "" || b.AdminPassword != "" {
		if !checkBasic(r, b.AdminUser, b.AdminPassword) {
			hd.Set("WWW-Authenticate", `Basic realm="pingap admin", charset="UTF-8"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin credentials required"})
			return
		}
	} else if !loopbackHost(r.Host) {
		// Without credentials only loopback clients can reach the admin
		// server; a Host that is not loopback means a browser was led here
		// through a DNS name (DNS rebinding), so refuse it.
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "without admin credentials the admin API answers only Host localhost, 127.0.0.0/8 or [::1]"})
		return
	}
	if err := h.csrf.Check(r); err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// checkBasic compares HTTP basic credentials in constant time (on SHA-256
// digests, so neither the lengths nor the first differing byte leak).
func checkBasic(r *http.Request, user, password string) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	uh, wantU := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(user))
	ph, wantP := sha256.Sum256([]byte(p)), sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(uh[:], wantU[:])&subtle.ConstantTimeCompare(ph[:], wantP[:]) == 1
}

// loopbackHost reports whether a Host header names a loopback address:
// localhost, 127.0.0.0/8 or ::1, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// getConfig answers the running config as JSON, or as TOML with
// ?format=toml (what PUT takes back).
// Both carry an ETag of the running config, which a PUT may send back in
// If-Match so that it does not overwrite a change made in between.
func (h *Handler) getConfig(w http.ResponseWriter, r *http.Request) {
	cfg := h.rt.Config()
	f := r.URL.Query().Get("format")
	if f != "" && f != "json" && f != "toml" {
		writeErrors(w, http.StatusBadRequest, []string{`format: want "json" or "toml", not ` + jsonQuote(f)})
		return
	}
	b, err := config.Encode(cfg)
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, []string{err.Error()})
		return
	}
	w.Header().Set("ETag", etagOf(b))
	switch f {
	case "", "json":
		writeJSON(w, http.StatusOK, cfg)
	case "toml":
		w.Header().Set("Content-Type", "application/toml; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	}
}

// etagOf names a config version by its canonical TOML.
func etagOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// currentETag returns the running config's ETag ("" if it cannot be
// encoded).
func (h *Handler) currentETag() string {
	b, err := config.Encode(h.rt.Config())
	if err != nil {
		return ""
	}
	return etagOf(b)
}

// putConfig parses and validates a whole TOML config, applies it and
// persists it. Nothing changes unless it is valid and applies.
func (h *Handler) putConfig(w http.ResponseWriter, r *http.Request) {
	if h.opts.Persist == nil {
		writeErrors(w, http.StatusConflict, []string{"the configuration source cannot be written by the admin API (a folder of files): edit its files, then POST /api/reload"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeErrors(w, http.StatusRequestEntityTooLarge, []string{"config larger than " + config.FormatSize(tooBig.Limit)})
			return
		}
		writeErrors(w, http.StatusBadRequest, []string{"reading the body: " + err.Error()})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if match := r.Header.Get("If-Match"); match != "" && match != "*" && match != h.currentETag() {
		writeErrors(w, http.StatusPreconditionFailed, []string{"the running configuration changed since it was read (If-Match does not match its ETag): load it again and redo the edit"})
		return
	}
	cfg, err := config.Parse(body, h.rt.Config().Source)
	if err != nil {
		h.rt.ReloadFailed(err)
		var all config.Errors
		all.Append("", "", err)
		if cfg != nil {
			// It decoded but failed validation: add the plugin option
			// problems, which the engine's build would report only later.
			all.Append("", "", h.rt.CheckPlugins(cfg))
		}
		writeErrors(w, http.StatusBadRequest, problems(all.Err()))
		return
	}
	if err := h.rt.Apply(cfg); err != nil {
		writeErrors(w, http.StatusBadRequest, problems(err))
		return
	}
	if err := h.opts.Persist(body); err != nil {
		h.log.Error("admin: config applied but not persisted", slog.String("source", cfg.Source), slog.String("error", err.Error()))
		writeJSON(w, http.StatusInternalServerError, map[string]any{
			"applied": true, "persisted": false,
			"errors": []string{"applied, but not persisted to " + cfg.Source + ": " + err.Error()},
		})
		return
	}
	h.log.Info("admin: config applied and persisted", slog.String("source", cfg.Source), slog.String("remote_addr", r.RemoteAddr))
	w.Header().Set("ETag", h.currentETag())
	writeJSON(w, http.StatusOK, map[string]any{"applied": true, "persisted": true})
}

// getUpstreams answers every upstream and addr with its live state.
func (h *Handler) getUpstreams(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": h.rt.Upstreams()})
}

// getStatus answers a few facts for the dashboard's header.
func (h *Handler) getStatus(w http.ResponseWriter, r *http.Request) {
	cfg := h.rt.Config()
	writeJSON(w, http.StatusOK, map[string]any{
		"name":           cfg.Basic.Name,
		"source":         cfg.Source,
		"writable":       h.opts.Persist != nil,
		"started":        h.started.UTC().Format(time.RFC3339),
		"uptime_seconds": int64(time.Since(h.started).Seconds()),
	})
}

// postReload reloads the configuration from its source.
func (h *Handler) postReload(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.rt.Reload(); err != nil {
		writeErrors(w, http.StatusBadRequest, problems(err))
		return
	}
	h.log.Info("admin: configuration reloaded from its source", slog.String("remote_addr", r.RemoteAddr))
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true})
}

// problems lists err's configuration problems, one string each
// ("FILE: [section] key: message").
func problems(err error) []string {
	var list config.Errors
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	var one *config.Error
	if errors.As(err, &one) {
		return []string{one.Error()}
	}
	return strings.Split(err.Error(), "\n")
}

func writeErrors(w http.ResponseWriter, status int, errs []string) {
	writeJSON(w, status, map[string][]string{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string][]string{"errors": {"encoding the answer: " + err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
