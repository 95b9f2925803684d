package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// servePprof serves net/http/pprof on addr (PINGAP_PPROF=127.0.0.1:6060).
// It is for profiling only (scripts/profile.sh, docs/performance.md): it is
// off unless the variable is set, it is not part of the configuration, and
// it also turns on block and mutex profiling, which cost a little on every
// contended lock and channel operation.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Sample blocking events of 10us or more, and 1 in 10 mutex contentions.
	runtime.SetBlockProfileRate(10_000)
	runtime.SetMutexProfileFraction(10)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Warn("pprof listening (PINGAP_PPROF); for profiling only", slog.String("addr", ln.Addr().String()))
	return nil
}
