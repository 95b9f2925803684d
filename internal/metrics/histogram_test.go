package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatherOne collects c on a registry of its own and returns the metric
// families by name.
func gatherOne(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// TestDurationVecMatchesPrometheus: the same observations give the same
// buckets, count and sum as prometheus' own histogram (bounds included:
// a bucket is "less than or equal"), and the derived counter counts them.
func TestDurationVecMatchesPrometheus(t *testing.T) {
	obs := []time.Duration{
		0, -time.Second, 1, 500 * time.Microsecond, 500*time.Microsecond + 1,
		time.Millisecond, 3 * time.Millisecond, 250 * time.Millisecond,
		30 * time.Second, 31 * time.Second, time.Hour,
	}
	v := newDurationVec("d_seconds", "help", [2]string{"a", "b"}, "d_total", "count help")
	h := v.child("x", "y")
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "d_seconds", Help: "help", Buckets: DurationBuckets[:]})
	var sum float64
	for _, d := range obs {
		h.Observe(d)
		ref.Observe(max(d, 0).Seconds())
		sum += max(d, 0).Seconds()
	}
	got := gatherOne(t, v)
	want := gatherOne(t, ref)["d_seconds"].GetMetric()[0].GetHistogram()
	mf := got["d_seconds"]
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 {
		t.Fatalf("histogram family %v", mf)
	}
	m := mf.GetMetric()[0]
	if !sameLabels(m.GetLabel(), map[string]string{"a": "x", "b": "y"}) {
		t.Fatalf("labels %v", m.GetLabel())
	}
	hg := m.GetHistogram()
	if hg.GetSampleCount() != uint64(len(obs)) || hg.GetSampleCount() != want.GetSampleCount() {
		t.Fatalf("count %d, prometheus %d, observed %d", hg.GetSampleCount(), want.GetSampleCount(), len(obs))
	}
	if math.Abs(hg.GetSampleSum()-sum) > 1e-6 {
		t.Fatalf("sum %v, want %v", hg.GetSampleSum(), sum)
	}
	if len(hg.GetBucket()) != len(want.GetBucket()) {
		t.Fatalf("%d buckets, prometheus %d", len(hg.GetBucket()), len(want.GetBucket()))
	}
	for i, b := range hg.GetBucket() {
		w := want.GetBucket()[i]
		if b.GetUpperBound() != w.GetUpperBound() || b.GetCumulativeCount() != w.GetCumulativeCount() {
			t.Fatalf("bucket %d: le=%v count %d, prometheus le=%v count %d", i,
				b.GetUpperBound(), b.GetCumulativeCount(), w.GetUpperBound(), w.GetCumulativeCount())
		}
	}
	c := got["d_total"]
	if c == nil || c.GetType() != dto.MetricType_COUNTER || c.GetMetric()[0].GetCounter().GetValue() != float64(len(obs)) {
		t.Fatalf("derived counter %v", c)
	}

	v.delete("x", "y")
	if got := gatherOne(t, v); len(got["d_seconds"].GetMetric()) != 0 {
		t.Fatalf("deleted child still exposed: %v", got["d_seconds"])
	}
	h.Observe(time.Millisecond) // a handle held past its delete: no panic, not exposed
}

// TestDurationObserveAllocs: an observation allocates nothing.
func TestDurationObserveAllocs(t *testing.T) {
	h := newDurationVec("d_seconds", "help", [2]string{"a", "b"}, "", "").child("x", "y")
	if n := testing.AllocsPerRun(100, func() { h.Observe(time.Millisecond) }); n != 0 {
		t.Fatalf("%v allocations per observation", n)
	}
}
