// Package demo runs two tiny backends for the example configuration, so that
// `pingap -config configs/example.toml -demo` answers requests on a fresh
// machine with nothing else running.
package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Start serves a small JSON echo backend on each addr and returns a function
// that stops them.
func Start(addrs ...string) (stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
	}
	for i, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			stop()
			return nil, fmt.Errorf("demo backend %s: %w", addr, err)
		}
		name := fmt.Sprintf("backend-%d", i+1)
		mux := http.NewServeMux()
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("ok\n"))
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Backend", name)
			json.NewEncoder(w).Encode(map[string]any{
				"backend": name,
				"method":  r.Method,
				"path":    r.URL.Path,
				"query":   r.URL.RawQuery,
				"host":    r.Host,
				"headers": r.Header,
			})
		})
		s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, s)
		go s.Serve(ln)
	}
	return stop, nil
}
