package metrics

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkObserve is the per-request call on a pre-resolved handle.
func BenchmarkObserve(b *testing.B) {
	m := New("bench")
	lm := m.Location("web", "api")
	methods := [...]string{"GET", "POST", "GET", "HEAD"}
	statuses := [...]int{200, 200, 404, 304, 502}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			lm.Observe(methods[i%len(methods)], statuses[i%len(statuses)], 1500*time.Microsecond, 128, 4096)
			i++
		}
	})
}

// BenchmarkObserveNaive is the same work done the obvious way: label
// lookups by string (and a status formatted) on every request.
func BenchmarkObserveNaive(b *testing.B) {
	m := New("bench")
	methods := [...]string{"GET", "POST", "GET", "HEAD"}
	statuses := [...]int{200, 200, 404, 304, 502}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			method, status := methods[i%len(methods)], statuses[i%len(statuses)]
			m.requests.WithLabelValues(method, strconv.Itoa(status), "web", "api").Inc()
			m.duration.child("web", "api").Observe(1500 * time.Microsecond)
			m.reqBytes.WithLabelValues("web").Add(128)
			m.respBytes.WithLabelValues("web").Add(4096)
			i++
		}
	})
}

func BenchmarkUpstreamRequest(b *testing.B) {
	m := New("bench")
	am := m.UpstreamAddr("backend", "10.0.0.1:80")
	b.ReportAllocs()
	for b.Loop() {
		am.Done(time.Millisecond, true, false)
	}
}
