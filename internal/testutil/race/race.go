//go:build race

// Package race tells tests whether the race detector is on. Allocation
// counts are not meaningful under it (sync.Pool drops items on purpose and
// the detector's own bookkeeping runs), so tests that count allocations
// skip that check under -race; `make unit` runs them again without it
// (go test -run Alloc).
package race

// Enabled is true in a -race build.
const Enabled = true
