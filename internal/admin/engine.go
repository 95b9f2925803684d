package admin

import (
	"log/slog"
	"net/http"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/engine"
	"github.com/pingap-go/pingap/internal/upstream"
)

// ForEngine returns the engine.Options.Admin hook: the engine calls it once
// with itself and serves the handler on basic.admin_addr.
func ForEngine(opts Options) func(*engine.Engine) http.Handler {
	return func(e *engine.Engine) http.Handler {
		if opts.Logger == nil {
			opts.Logger = slog.Default()
		}
		return New(engineRuntime{e: e, log: opts.Logger}, opts)
	}
}

// engineRuntime adapts *engine.Engine to Runtime.
type engineRuntime struct {
	e   *engine.Engine
	log *slog.Logger
}

func (r engineRuntime) Config() *config.Config {
	if s := r.e.Snapshot(); s != nil {
		return s.Config()
	}
	return nil
}

func (r engineRuntime) Apply(cfg *config.Config) error { return r.e.Apply(cfg) }

func (r engineRuntime) Reload() error { return r.e.Reload() }

func (r engineRuntime) CheckPlugins(cfg *config.Config) error { return engine.CheckPlugins(cfg) }

func (r engineRuntime) Upstreams() []upstream.UpstreamStatus { return r.e.Registry().Status() }

// ReloadFailed counts and logs a PUT that failed before reaching Apply, the
// way engine.Reload does for a source that does not load.
func (r engineRuntime) ReloadFailed(err error) {
	r.e.Metrics().ConfigReload(false)
	r.log.Error("reload failed; the running configuration stays", slog.String("source", "admin"), slog.String("error", err.Error()))
}
