package httpx

import "strconv"

// smallInts holds the decimal strings of 0..4095, built once, read-only.
var smallInts = func() []string {
	s := make([]string, 4096)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// Itoa formats n in decimal without allocating for 0..4095: header values
// such as Age, Retry-After and X-RateLimit-* are small numbers.
func Itoa(n int64) string {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return strconv.FormatInt(n, 10)
}
