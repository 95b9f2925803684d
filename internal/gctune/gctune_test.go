package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	cfg := Config{Headroom: 24 << 20, MinPercent: 25, MaxPercent: 400} // explicit, not the defaults
	tests := []struct {
		name  string
		roots uint64
		want  int
	}{
		{"nothing measured yet", 0, 400},
		{"small proxy: max", 4 << 20, 400},
		{"at the max boundary", 6 << 20, 400},
		{"between: headroom", 48 << 20, 50},
		{"many connections", 96 << 20, 25},
		{"huge heap: min", 1 << 30, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percent(cfg, tt.roots); got != tt.want {
				t.Fatalf("Percent(%d MB) = %d, want %d", tt.roots>>20, got, tt.want)
			}
		})
	}
}

// TestTunerFollowsCollections: the policy runs at Start and again after
// each GC cycle, and GOGC is what it computed.
func TestTunerFollowsCollections(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := Start(Config{})
	defer tu.Stop()
	if tu.Adjustments() != 1 {
		t.Fatalf("%d adjustments at start, want 1", tu.Adjustments())
	}
	if got := debug.SetGCPercent(tu.GOGC()); got != tu.GOGC() {
		t.Fatalf("runtime GOGC %d, tuner says %d", got, tu.GOGC())
	}
	for i := 0; i < 200 && tu.Adjustments() < 3; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond) // cleanups run on their own goroutine
	}
	if n := tu.Adjustments(); n < 3 {
		t.Fatalf("%d adjustments after 200 collections, want the policy to run after each", n)
	}
	if p := tu.GOGC(); p < DefaultMinPercent || p > DefaultMaxPercent {
		t.Fatalf("GOGC %d outside [%d, %d]", p, DefaultMinPercent, DefaultMaxPercent)
	}
	tu.Stop()
	n := tu.Adjustments()
	runtime.GC()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if tu.Adjustments() > n+1 {
		t.Fatalf("still adjusting after Stop")
	}
}
