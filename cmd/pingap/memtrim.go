package main

import (
	"errors"
	"log/slog"
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
// applied reload, so that pages and heap only start-up (or building the
// new configuration) used do not stay in the resident set.
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
