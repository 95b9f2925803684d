package metrics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// durationVec is a family of duration histograms with two labels, for the
// two the request path updates (http_request_duration_seconds and
// upstream_response_duration_seconds). An observation is two atomic adds:
// its bucket and the sum in nanoseconds. prometheus.Histogram takes four
// (a count with a hot/cold index for consistent scrapes, the bucket, the
// count again, and a compare-and-swap loop on a float sum); here the count
// is the sum of the buckets, taken at scrape time from the same reading,
// so _count and the +Inf bucket always agree. The exposition is the same.
//
// With count set, each child also exposes its number of observations as
// that counter (upstream_requests_total counts exactly the round trips the
// upstream histogram observes), so it costs no atomic of its own.
type durationVec struct {
	desc   *prometheus.Desc
	count  *prometheus.Desc // nil: no counter
	bounds [len(DurationBuckets)]int64

	mu       sync.Mutex
	children map[[2]string]*durationHist
}

// durationHist is one child: per-bucket (not cumulative) counts, the last
// one for observations above every bound, and the sum.
type durationHist struct {
	bounds *[len(DurationBuckets)]int64
	labels [2]string
	counts [len(DurationBuckets) + 1]atomic.Uint64
	sumNs  atomic.Uint64
}

func newDurationVec(name, help string, labels [2]string, countName, countHelp string) *durationVec {
	v := &durationVec{
		desc:     prometheus.NewDesc(name, help, labels[:], nil),
		children: make(map[[2]string]*durationHist),
	}
	if countName != "" {
		v.count = prometheus.NewDesc(countName, countHelp, labels[:], nil)
	}
	for i, b := range DurationBuckets {
		v.bounds[i] = int64(math.Round(b * 1e9))
	}
	return v
}

// child returns the histogram of the label values, made on first use.
// Build time: it takes a lock.
func (v *durationVec) child(a, b string) *durationHist {
	k := [2]string{a, b}
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.children[k]
	if h == nil {
		h = &durationHist{bounds: &v.bounds, labels: k}
		v.children[k] = h
	}
	return h
}

// delete drops the series of the label values. A handle still held keeps
// counting into its detached child, which is no longer exposed.
func (v *durationVec) delete(a, b string) {
	v.mu.Lock()
	delete(v.children, [2]string{a, b})
	v.mu.Unlock()
}

// Observe records one duration (negative counts as zero). Allocation-free,
// no lock.
func (h *durationHist) Observe(d time.Duration) {
	ns := max(int64(d), 0)
	i := 0
	for i < len(h.bounds) && ns > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(ns))
}

// Describe implements prometheus.Collector.
func (v *durationVec) Describe(ch chan<- *prometheus.Desc) {
	ch <- v.desc
	if v.count != nil {
		ch <- v.count
	}
}

// Collect implements prometheus.Collector.
func (v *durationVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	hs := make([]*durationHist, 0, len(v.children))
	for _, h := range v.children {
		hs = append(hs, h)
	}
	v.mu.Unlock()
	for _, h := range hs {
		buckets := make(map[float64]uint64, len(DurationBuckets))
		var n uint64
		for i, b := range DurationBuckets {
			n += h.counts[i].Load()
			buckets[b] = n
		}
		n += h.counts[len(DurationBuckets)].Load()
		sum := float64(h.sumNs.Load()) / 1e9
		ch <- prometheus.MustNewConstHistogram(v.desc, n, sum, buckets, h.labels[0], h.labels[1])
		if v.count != nil {
			ch <- prometheus.MustNewConstMetric(v.count, prometheus.CounterValue, float64(n), h.labels[0], h.labels[1])
		}
	}
}
