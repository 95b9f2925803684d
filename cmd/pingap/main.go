// Command pingap is the pingap-go reverse proxy. This file only wires flags,
// signals and packages together; the behaviour lives under internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pingap-go/pingap/internal/admin"
	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/config/source"
	"github.com/pingap-go/pingap/internal/demo"
	"github.com/pingap-go/pingap/internal/engine"
	"github.com/pingap-go/pingap/internal/gctune"
	"github.com/pingap-go/pingap/internal/logging"
	"github.com/pingap-go/pingap/internal/upgrade"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "config" {
		return configCommand(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("pingap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration: a TOML file, a folder of *.toml files, or etcd://HOST:PORT/PREFIX")
	test := fs.Bool("t", false, "validate the configuration, print every problem and exit (0 valid, 1 invalid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	demoBackends := fs.Bool("demo", false, "also start the two demo backends of configs/example.toml (127.0.0.1:8001 and :8002)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "pingap %s (%s)\n", version, runtime.Version())
		return 0
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "pingap: -config is required (see -h)")
		return 2
	}
	etcdSrc, load, err := configSource(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg, err := load()
	if *test {
		if err != nil {
			var all config.Errors
			all.Append("", "", err)
			if cfg != nil {
				// The config decoded but failed validation: plugin options
				// are only checked by their builders, list those too.
				all.Append("", "", engine.CheckPlugins(cfg))
			}
			all.Sort()
			fmt.Fprintln(stderr, all.Err())
			fmt.Fprintf(stderr, "configuration %s is invalid\n", *cfgPath)
			return 1
		}
		if err := engine.Check(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			fmt.Fprintf(stderr, "configuration %s is invalid\n", *cfgPath)
			return 1
		}
		fmt.Fprintf(stdout, "configuration %s is valid\n", *cfgPath)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}

	logger, level := logging.New(cfg.Basic.LogLevel, cfg.Basic.LogFormat, stderr)
	if cfg.Basic.Threads > 0 {
		runtime.GOMAXPROCS(cfg.Basic.Threads)
	}
	tuneGC()
	if addr := os.Getenv("PINGAP_PPROF"); addr != "" {
		if err := servePprof(addr, logger); err != nil {
			logger.Error("PINGAP_PPROF", slog.String("addr", addr), slog.String("error", err.Error()))
			return 1
		}
	}

	if *demoBackends {
		stop, err := demo.Start("127.0.0.1:8001", "127.0.0.1:8002")
		if err != nil {
			logger.Error("demo backends", slog.String("error", err.Error()))
			return 1
		}
		defer stop()
	}

	// Signals are caught before anything listens, so a SIGTERM that arrives
	// while the first requests run is a graceful shutdown, never a kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, sigReopen, sigUpgrade)

	inherited, err := upgrade.FromEnv()
	if err != nil {
		logger.Error("inherited listeners", slog.String("error", err.Error()))
		return 1
	}
	persist := admin.PersistFile(*cfgPath)
	if etcdSrc != nil {
		persist = etcdSrc.Persist
	}
	// The auto_reload watcher follows the running config: every applied
	// reload (SIGHUP, the watcher itself, admin, etcd) turns it on or off.
	watch := &watcher{path: *cfgPath, log: logger}
	trimmer := newMemTrimmer(logger, os.Getenv(memTrimEnv))
	e := engine.New(engine.Options{Name: cfg.Basic.Name, Logger: logger, LogLevel: level, Load: load, Listen: inherited.Listen,
		Admin: admin.ForEngine(admin.Options{Logger: logger, Persist: persist}),
		Applied: func(c *config.Config) {
			watch.set(c.Basic.AutoReload)
			go trimmer.trim("reload") // Applied runs under the engine's lock
		}})
	if err := e.Start(cfg); err != nil {
		logger.Error("start failed", slog.String("error", err.Error()))
		return 1
	}
	inherited.Ready()
	reload := func() {
		e.Reload()
	}
	watch.reload = reload
	watch.set(cfg.Basic.AutoReload)
	defer watch.set(false)
	stopEtcd := watchEtcd(etcdSrc, logger, reload)
	defer stopEtcd()
	logger.Info("pingap started", slog.String("version", version), slog.String("config", *cfgPath), slog.Int("pid", os.Getpid()))
	afterStartup(trimmer)

	shutdown := func(why string) int {
		stopEtcd() // no etcd-triggered reload while draining
		grace := e.Snapshot().Config().Basic.GracePeriod.D()
		logger.Info("shutting down", slog.String("reason", why), slog.Duration("grace_period", grace))
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		err := e.Shutdown(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("grace period over; remaining connections closed", slog.String("error", err.Error()))
		}
		logger.Info("stopped")
		return 0
	}

	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			logger.Info("SIGHUP: reloading configuration")
			reload()
		case sigReopen:
			e.ReopenAccessLog()
		case sigUpgrade:
			logger.Info("SIGUSR2: starting a new process for a graceful upgrade")
			child, err := upgrade.Spawn(args, e.Listeners(), 30*time.Second)
			if err != nil {
				logger.Error("upgrade failed; this process keeps serving", slog.String("error", err.Error()))
				continue
			}
			logger.Info("new process serves; draining this one", slog.Int("new_pid", child.Pid))
			return shutdown("upgrade")
		case syscall.SIGTERM, syscall.SIGINT:
			return shutdown(sig.String())
		}
	}
	return 0
}

// watcher runs the auto_reload file watcher while it is enabled. set is
// called from the signal loop and from reloads on other goroutines (the
// watcher's own included: cancelling its context there is fine, the watch
// ends after the callback returns).
type watcher struct {
	path   string
	log    *slog.Logger
	reload func()

	mu     sync.Mutex
	cancel context.CancelFunc
}

func (w *watcher) set(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on == (w.cancel != nil) {
		return
	}
	if !on {
		w.cancel()
		w.cancel = nil
		return
	}
	if strings.HasPrefix(w.path, "etcd://") {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := source.Watch(ctx, w.path, 300*time.Millisecond, w.log, func() {
		w.log.Info("configuration changed on disk: reloading", slog.String("path", w.path))
		w.reload()
	}, nil)
	if err != nil {
		cancel()
		w.log.Error("auto_reload watcher", slog.String("error", err.Error()))
		return
	}
	w.cancel = cancel
}

// tuneGC applies the proxy's GC default unless the operator set GOGC: a
// tuner that sets GOGC after each collection so the heap may grow by about
// 16 MB over what the collector scans, between GOGC=25 and GOGC=400 (400
// while the proxy is small: far fewer collections under load; less when it
// holds many connections, whose stacks would otherwise multiply the heap).
// See internal/gctune and docs/performance.md.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		gctune.Start(gctune.Config{})
	}
}
