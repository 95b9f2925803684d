// Package gctune sets the garbage collector's GOGC after every collection so
// that the heap may grow by a bounded amount over what is live.
//
// Why: the live heap of a proxy is usually small (a few MB), and with the
// default GOGC=100 the collector then runs dozens of times a second under
// load; GOGC=400 buys most of that CPU back for ~16 MB. But GOGC multiplies
// everything the collector scans: heap, goroutine stacks and globals. With
// 10,000 keep-alive connections those are 50+ MB, and GOGC=400 would let
// the heap grow by 200+ MB before the next collection (that was most of
// the memory per connection). So the growth allowed is
//
//	headroom = clamp(Headroom, MinPercent% of roots, MaxPercent% of roots)
//
// with roots = live heap + stacks + globals, measured after each
// collection: GOGC=400 while the proxy is small, a fixed ~Headroom when it
// holds many connections, never below MinPercent (a very large live heap,
// such as a big in-memory cache, gets GOGC=MinPercent rather than a
// collector that never stops).
//
// An operator's GOGC (environment) disables the tuner; GOMEMLIMIT still
// applies on top of it as a hard-ish ceiling.
//
// One interaction to know: the runtime's periodic GC (every 2 minutes)
// only runs once a first collection has happened, and GOGC=400 on a small
// heap puts the first one at ~16 MB allocated, so an idle proxy's heap
// would grow for most of an hour. cmd/pingap therefore runs one
// collection right after start-up.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Defaults of Config.
const (
	DefaultHeadroom   = 16 << 20
	DefaultMinPercent = 25
	DefaultMaxPercent = 400
)

// Config is the tuning policy. Zero fields take the defaults.
type Config struct {
	// Headroom is the heap growth allowed between collections, in bytes,
	// before the percent bounds apply.
	Headroom uint64
	// MinPercent and MaxPercent bound the GOGC set.
	MinPercent, MaxPercent int
}

// Tuner adjusts GOGC after every garbage collection until Stop.
type Tuner struct {
	cfg     Config
	samples []metrics.Sample
	stopped atomic.Bool
	percent atomic.Int64
	cycles  atomic.Uint64
}

// marker is the object whose collection signals the end of a GC cycle.
type marker struct{ _ [16]byte }

// Start applies the policy now and after every collection.
func Start(cfg Config) *Tuner {
	if cfg.Headroom == 0 {
		cfg.Headroom = DefaultHeadroom
	}
	if cfg.MinPercent <= 0 {
		cfg.MinPercent = DefaultMinPercent
	}
	if cfg.MaxPercent <= 0 {
		cfg.MaxPercent = DefaultMaxPercent
	}
	if cfg.MaxPercent < cfg.MinPercent {
		cfg.MaxPercent = cfg.MinPercent
	}
	t := &Tuner{cfg: cfg, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.adjust()
	t.arm()
	return t
}

// arm registers a cleanup on a fresh unreachable object: it runs (on the
// runtime's cleanup goroutine) once a collection has found the object dead,
// that is after each GC cycle.
func (t *Tuner) arm() {
	m := &marker{}
	runtime.AddCleanup(m, func(t *Tuner) {
		if t.stopped.Load() {
			return
		}
		t.adjust()
		t.arm()
	}, t)
}

// adjust sets GOGC from the roots of the last collection.
func (t *Tuner) adjust() {
	t.cycles.Add(1)
	metrics.Read(t.samples)
	var roots uint64
	for _, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			roots += s.Value.Uint64()
		}
	}
	p := Percent(t.cfg, roots)
	if int64(p) != t.percent.Load() {
		t.percent.Store(int64(p))
		debug.SetGCPercent(p)
	}
}

// Percent is the GOGC the policy gives for roots bytes of live heap, stacks
// and globals.
func Percent(cfg Config, roots uint64) int {
	if roots == 0 {
		return cfg.MaxPercent
	}
	p := int(min(cfg.Headroom*100/roots, uint64(cfg.MaxPercent)))
	return max(p, cfg.MinPercent)
}

// Adjustments counts the times the policy ran (once at Start, then once
// per GC cycle).
func (t *Tuner) Adjustments() uint64 { return t.cycles.Load() }

// GOGC returns the value last set.
func (t *Tuner) GOGC() int { return int(t.percent.Load()) }

// Stop stops adjusting; GOGC keeps its last value.
func (t *Tuner) Stop() { t.stopped.Store(true) }
