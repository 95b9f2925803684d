package httpx

import (
	"strconv"
	"testing"

	"github.com/pingap-go/pingap/internal/testutil/race"
)

func TestItoa(t *testing.T) {
	for n := int64(-5); n <= smallIntsMax+5; n++ {
		if got, want := Itoa(n), strconv.FormatInt(n, 10); got != want {
			t.Fatalf("Itoa(%d) = %q, want %q", n, got, want)
		}
	}
	for _, n := range []int64{-1 << 63, 1<<63 - 1, 1e9} {
		if got, want := Itoa(n), strconv.FormatInt(n, 10); got != want {
			t.Fatalf("Itoa(%d) = %q, want %q", n, got, want)
		}
	}
	if got := len(smallInts()); got != 15274 {
		t.Fatalf("smallInts is %d bytes, want 15274 (the capacity hint)", got)
	}
}

func TestItoaAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	Itoa(1) // build the table outside the measurement
	for _, n := range []int64{0, 7, 42, 99, 100, 512, 999, 1000, 4095} {
		if a := testing.AllocsPerRun(100, func() { _ = Itoa(n) }); a != 0 {
			t.Errorf("Itoa(%d): %v allocations, want 0", n, a)
		}
	}
}
