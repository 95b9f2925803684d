//go:build linux

package memtrim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"unsafe"
)

// TestTrimReleasesExecutablePages: Trim lowers this process's RssFile
// (the test binary's pages), and code and read-only data work afterwards:
// they fault back in from the page cache.
func TestTrimReleasesExecutablePages(t *testing.T) {
	// Touch some code and tables first, so that there is something to drop.
	warm := func() string {
		re := regexp.MustCompile(`^([a-z]+)-(\d+)$`)
		m := re.FindStringSubmatch("trim-42")
		sum := sha256.Sum256([]byte(m[1] + m[2]))
		return hex.EncodeToString(sum[:4])
	}
	want := warm()

	fileBefore, _, err := rss()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Trim()
	if err != nil {
		t.Fatalf("Trim: %v", err)
	}
	if res.Released == 0 {
		t.Fatalf("Trim released nothing: %+v", res)
	}
	// RssFile is this process's resident file-backed pages, nearly all of
	// them the test binary's own (megabytes: the runtime, the testing
	// package, what warm ran). After Trim only what ran since may be back.
	const minDrop = 256 << 10
	if res.FileAfter > fileBefore-minDrop {
		t.Fatalf("RssFile %d KB -> %d KB after Trim, want at least %d KB less (%+v)",
			fileBefore>>10, res.FileAfter>>10, minDrop>>10, res)
	}
	// The process keeps working: the same code and data give the same result.
	if got := warm(); got != want {
		t.Fatalf("after Trim: %q, want %q", got, want)
	}
	fileAgain, _, err := rss()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RssFile %d KB -> %d KB (trim) -> %d KB (after running code again); released %d KB of address space",
		fileBefore>>10, res.FileAfter>>10, fileAgain>>10, res.Released>>10)
}

// TestTrimTwice: a second Trim right after the first is harmless and
// still finds the mappings.
func TestTrimTwice(t *testing.T) {
	for i := range 2 {
		res, err := Trim()
		if err != nil || res.Released == 0 {
			t.Fatalf("Trim #%d: %+v, %v", i+1, res, err)
		}
	}
}

// TestHasAnonPagesRealMappings checks the copy-on-write guard against the
// kernel's pagemap: a private file mapping whose page was written (then
// made read-only, as a PIE binary's relocated data is) holds an anonymous
// page and must be skipped; a clean read-only private mapping must not.
func TestHasAnonPagesRealMappings(t *testing.T) {
	page := os.Getpagesize()
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, make([]byte, 4*page), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pagemap.Close()

	clean, err := syscall.Mmap(int(f.Fd()), 0, 4*page, syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(clean)
	var sink byte
	for i := 0; i < len(clean); i += page {
		sink += clean[i] // make every page present
	}
	_ = sink

	cow, err := syscall.Mmap(int(f.Fd()), 0, 4*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(cow)
	cow[2*page] = 1 // copy-on-write: page 2 becomes anonymous
	if err := syscall.Mprotect(cow, syscall.PROT_READ); err != nil {
		t.Fatal(err)
	}

	span := func(b []byte) (uintptr, uintptr) {
		start := uintptr(unsafe.Pointer(&b[0]))
		return start, start + uintptr(len(b))
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"clean read-only private file mapping", clean, false},
		{"written private mapping", cow, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := span(tt.b)
			got, err := hasAnonPages(pagemap, start, end)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("hasAnonPages = %v, want %v", got, tt.want)
			}
		})
	}
}

// fakePagemap serves pagemap entries for pages 0..len-1 of address 0.
type fakePagemap []uint64

func (p fakePagemap) ReadAt(b []byte, off int64) (int, error) {
	for i := 0; i < len(b); i += 8 {
		idx := int(off)/8 + i/8
		var e uint64
		if idx < len(p) {
			e = p[idx]
		}
		binary.LittleEndian.PutUint64(b[i:], e)
	}
	return len(b), nil
}

func TestHasAnonPagesEntries(t *testing.T) {
	page := uintptr(os.Getpagesize())
	many := make(fakePagemap, 1500) // spans several 512-entry reads
	many[1400] = pmPresent          // anonymous page late in the range
	tests := []struct {
		name string
		pm   fakePagemap
		want bool
	}{
		{"nothing present", fakePagemap{0, 0, 0}, false},
		{"file pages", fakePagemap{pmPresent | pmFile, 0, pmPresent | pmFile}, false},
		{"present anonymous", fakePagemap{pmPresent | pmFile, pmPresent}, true},
		{"swapped anonymous", fakePagemap{0, pmSwapped}, true},
		{"past the first chunk", many, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hasAnonPages(tt.pm, 0, uintptr(len(tt.pm))*page)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		want mapping
	}{
		{"00400000-01211000 r-xp 00000000 fe:00 10119424                           /work/pingap",
			true, mapping{start: 0x400000, end: 0x1211000, perms: "r-xp", dev: "fe:00", inode: 10119424}},
		{"7f89bb920000-7f89bbb00000 rw-p 00000000 00:00 0 ",
			true, mapping{start: 0x7f89bb920000, end: 0x7f89bbb00000, perms: "rw-p", dev: "00:00", inode: 0}},
		{"02123000-02211000 rw-p 01d23000 fe:00 10119424 /work/pingap (deleted)",
			true, mapping{start: 0x2123000, end: 0x2211000, perms: "rw-p", dev: "fe:00", inode: 10119424}},
		{"", false, mapping{}},
		{"garbage", false, mapping{}},
		{"0400000 r-xp 0 fe:00 1", false, mapping{}},
		{"zz-01 r-xp 0 fe:00 1", false, mapping{}},
		{"02000-01000 r-xp 0 fe:00 1", false, mapping{}},
		{"01000-02000 r-x 0 fe:00 1", false, mapping{}},
		{"01000-02000 r-xp 0 fe:00 x", false, mapping{}},
	}
	for _, tt := range tests {
		got, ok := parseMapsLine([]byte(tt.line))
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseMapsLine(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReleasable(t *testing.T) {
	tests := []struct {
		perms string
		want  bool
	}{
		{"r-xp", true},
		{"r--p", true},
		{"rw-p", false}, // data, bss: MADV_DONTNEED would discard them
		{"r-xs", false}, // shared
		{"---p", false},
		{"rwxp", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := releasable(tt.perms); got != tt.want {
			t.Errorf("releasable(%q) = %v, want %v", tt.perms, got, tt.want)
		}
	}
}

// makedev is glibc's encoding of a dev_t, the inverse of major and minor.
func makedev(major, minor uint64) uint64 {
	return (major&0xfff)<<8 | (major&^0xfff)<<32 | minor&0xff | (minor&^0xff)<<12
}

func TestDevNumbers(t *testing.T) {
	tests := []struct {
		dev          uint64
		major, minor uint64
	}{
		{0xfe00, 0xfe, 0}, // /dev/vda as maps prints it: fe:00
		{0x0803, 8, 3},
		{makedev(0xabc123, 0x67845), 0xabc123, 0x67845},
		{makedev(259, 1), 259, 1}, // nvme0n1p1
	}
	for _, tt := range tests {
		if ma, mi := major(tt.dev), minor(tt.dev); ma != tt.major || mi != tt.minor {
			t.Errorf("dev %#x: %x:%x, want %x:%x", tt.dev, ma, mi, tt.major, tt.minor)
		}
	}
}
