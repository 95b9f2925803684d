package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPprofHandler(t *testing.T) {
	tests := []struct {
		path   string
		status int
		body   string // a substring of the body ("" = any non-empty body)
	}{
		{"/debug/pprof/", 200, "goroutine"},
		{"/debug/pprof/heap", 200, ""},
		{"/debug/pprof/heap?gc=1", 200, ""},
		{"/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"/debug/pprof/allocs", 200, ""},
		{"/debug/pprof/block", 200, ""},
		{"/debug/pprof/mutex", 200, ""},
		{"/debug/pprof/profile?seconds=1", 200, ""},
		{"/debug/pprof/profile?seconds=zero", 400, "bad seconds"},
		{"/debug/pprof/trace?seconds=-1", 400, "bad seconds"},
		{"/debug/pprof/nosuch", 404, ""},
		{"/metrics", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			pprofHandler(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.status, rec.Body.String())
			}
			if rec.Body.Len() == 0 {
				t.Fatal("empty body")
			}
			if tt.body != "" && !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("body %.200q lacks %q", rec.Body.String(), tt.body)
			}
		})
	}
}
