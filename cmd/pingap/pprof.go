package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// servePprof serves profiles on addr (PINGAP_PPROF=127.0.0.1:6060) under
// /debug/pprof/, in the paths and formats of net/http/pprof:
//
//	profile?seconds=N   CPU profile
//	trace?seconds=N     execution trace
//	heap, allocs, block, mutex, goroutine, threadcreate   [?debug=1] [?gc=1]
//
// It is for profiling only (scripts/profile.sh, docs/performance.md): off
// unless the variable is set, not part of the configuration. It also turns
// on block and mutex profiling, which cost a little on every contended
// lock and channel operation. It is written on runtime/pprof rather than
// importing net/http/pprof, whose HTML index pulls html/template into the
// binary and ~1 MB into every process's idle RSS.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Sample blocking events of 10us or more, and 1 in 10 mutex contentions.
	runtime.SetBlockProfileRate(10_000)
	runtime.SetMutexProfileFraction(10)
	srv := &http.Server{Handler: http.HandlerFunc(pprofHandler), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Warn("pprof listening (PINGAP_PPROF); for profiling only", slog.String("addr", ln.Addr().String()))
	return nil
}

func pprofHandler(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/debug/pprof/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	seconds := 30
	if s := q.Get("seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 3600 {
			http.Error(w, "bad seconds", http.StatusBadRequest)
			return
		}
		seconds = n
	}
	debug, _ := strconv.Atoi(q.Get("debug"))
	switch name {
	case "", "index":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "profile?seconds=N trace?seconds=N")
		for _, p := range pprof.Profiles() {
			fmt.Fprintf(w, "%s (%d)\n", p.Name(), p.Count())
		}
	case "profile":
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		sleep(r, seconds)
		pprof.StopCPUProfile()
	case "trace":
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := trace.Start(w); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		sleep(r, seconds)
		trace.Stop()
	default:
		p := pprof.Lookup(name)
		if p == nil {
			http.NotFound(w, r)
			return
		}
		if name == "heap" && q.Get("gc") != "" {
			runtime.GC()
		}
		if debug > 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		p.WriteTo(w, debug)
	}
}

// sleep waits for the profile's duration or until the client goes away.
func sleep(r *http.Request, seconds int) {
	select {
	case <-time.After(time.Duration(seconds) * time.Second):
	case <-r.Context().Done():
	}
}
