// Package memtrim gives back, once start-up is over, the memory that only
// start-up used, so that the resident set shows what the running proxy
// uses.
//
// Why: most of an idle pingap's RSS is not heap but pages of its own
// executable (RssFile): the runtime and the package initialisers of the
// dependencies (protobuf descriptors of the etcd client and gRPC, OTLP,
// Prometheus) read code, type data and the function table all over the
// 30 MB binary before main runs, and the kernel maps 64 KB of cached file
// around every page fault on a file mapping ("fault-around"). After
// start-up those pages stay mapped although nothing touches them again.
// Trim unmaps them from this process: they stay in the page cache (clean,
// shared, reclaimable by the kernel at any time), and a page that is used
// again is mapped back on first touch by a minor fault, without I/O. The
// RSS after Trim therefore is the set of pages the proxy touched since:
// its working set, which grows back to what traffic needs.
//
// It deliberately leaves the heap alone: returning start-up's garbage
// with debug.FreeOSMemory was measured to save nothing over a plain
// collection (the collector's own metadata, which the first collection
// allocates, outweighs the ~1 MB of garbage start-up leaves, and freed
// heap pages are reused). cmd/pingap runs one runtime.GC before the
// first Trim, for another reason (the runtime's periodic GC only starts
// after a first collection).
//
// What it never touches: writable mappings (data, bss: MADV_DONTNEED
// would discard their contents) and read-only mappings that hold
// anonymous (copy-on-write) pages, such as the relocated read-only data
// of a position-independent build or a debugger's breakpoints; only the
// executable's own read-only file mappings whose every page is still the
// file's.
package memtrim

import "errors"

// ErrUnsupported is returned (possibly wrapped) by Trim where it does
// nothing: not Linux, or no /proc to find the executable's mappings in.
var ErrUnsupported = errors.New("memtrim: not supported on this OS")

// Result is what one Trim did, from /proc/self/status before and after.
type Result struct {
	// FileBefore and FileAfter are RssFile in bytes, AnonBefore and
	// AnonAfter RssAnon.
	FileBefore, FileAfter int64
	AnonBefore, AnonAfter int64
	// Released is the number of bytes of address space (read-only
	// mappings of the executable) that were unmapped from the page tables.
	Released int64
}

// Trim unmaps the executable's read-only file-backed pages from this
// process (Linux; a no-op elsewhere, with ErrUnsupported). It is safe to
// call at any time and from any goroutine, also while requests are
// served: a page that is needed again faults back in from the page cache.
// It costs a read of /proc/self/maps and of those mappings' pagemap
// entries and one madvise per mapping (about a millisecond), then one
// minor fault per 64 KB the proxy touches again; call it after start-up
// and after a configuration reload, not per request.
func Trim() (Result, error) { return trim() }
