package httpx

import (
	"strconv"
	"sync"
)

// smallIntsMax bounds the numbers Itoa formats without allocating.
const smallIntsMax = 4096

// smallInts holds the decimal digits of 0..4095 back to back ("0123...
// 9101112...40944095", 15 KB, one allocation), built on first use, then
// read-only: Itoa slices it. Lazy because most configurations never call
// Itoa (the cache and limit plugins do), and a table of 4096 separate
// strings built by a package initialiser cost every process 80 KB of heap
// and 4,000 allocations at start-up.
var smallInts = sync.OnceValue(func() string {
	b := make([]byte, 0, 15274)
	for i := range smallIntsMax {
		b = strconv.AppendInt(b, int64(i), 10)
	}
	return string(b)
})

// Itoa formats n in decimal without allocating for 0..4095: header values
// such as Age, Retry-After and X-RateLimit-* are small numbers.
func Itoa(n int64) string {
	if n < 0 || n >= smallIntsMax {
		return strconv.FormatInt(n, 10)
	}
	if n < 100 {
		return strconv.FormatInt(n, 10) // static strings, no allocation
	}
	// Offsets in smallInts: 10 one-digit, 90 two-digit, 900 three-digit
	// numbers, then the four-digit ones.
	off, w := 190+(n-100)*3, int64(3)
	if n >= 1000 {
		off, w = 2890+(n-1000)*4, 4
	}
	return smallInts()[off : off+w]
}
