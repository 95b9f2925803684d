package main

import (
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/memtrim"
)

// memTrimEnv names the environment variable that turns the post-start-up
// memory trim off: PINGAP_MEMTRIM=off (or 0, false, no). Unset or any
// other value: on. See internal/memtrim and docs/performance.md.
const memTrimEnv = "PINGAP_MEMTRIM"

// memTrimmer runs memtrim.Trim once start-up is over and again after each
// applied reload, so that pages of the binary only start-up (or building
// the new configuration) touched do not stay in the resident set.
type memTrimmer struct {
	log *slog.Logger
	on  bool
	mu  sync.Mutex // one trim at a time
}

// newMemTrimmer reads the opt-out from env (the value of PINGAP_MEMTRIM).
func newMemTrimmer(log *slog.Logger, env string) *memTrimmer {
	switch strings.ToLower(strings.TrimSpace(env)) {
	case "off", "0", "false", "no":
		return &memTrimmer{log: log}
	}
	return &memTrimmer{log: log, on: true}
}

// afterStartup runs once start-up is over (config loaded, listeners
// open). First one garbage collection: the Go runtime's periodic GC
// (every 2 minutes) only runs once a first collection has happened, and
// with gctune's headroom that first one waits until ~16 MB have been
// allocated, so an idle proxy's heap (health probes, metrics scrapes)
// grew by ~0.4 MB a minute for most of an hour (docs/performance.md,
// "Idle memory"). Then the binary's pages that only start-up used are
// given back (PINGAP_MEMTRIM), after the collection so that the pages it
// touched go too.
func afterStartup(t *memTrimmer) {
	runtime.GC()
	t.trim("start-up")
}

// trim releases start-up memory now; why is logged ("start-up", "reload").
func (t *memTrimmer) trim(why string) {
	if !t.on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	start := time.Now()
	res, err := memtrim.Trim()
	took := time.Since(start)
	if errors.Is(err, memtrim.ErrUnsupported) {
		return
	}
	if err != nil {
		t.log.Warn("memory trim", slog.String("after", why), slog.String("error", err.Error()))
		return
	}
	t.log.Debug("memory trim", slog.String("after", why),
		slog.Int64("rss_file_kb_before", res.FileBefore>>10), slog.Int64("rss_file_kb_after", res.FileAfter>>10),
		slog.Int64("rss_anon_kb_before", res.AnonBefore>>10), slog.Int64("rss_anon_kb_after", res.AnonAfter>>10),
		slog.Duration("took", took))
}
