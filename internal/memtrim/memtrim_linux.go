//go:build linux

package memtrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
)

// mapping is one region of /proc/self/smaps.
type mapping struct {
	start, end uintptr
	perms      string
	dev        string // "major:minor" in hex, as maps prints it
	inode      uint64
	anon       int64 // bytes of anonymous (copy-on-write) pages
}

func trim() (Result, error) {
	var res Result
	res.FileBefore, res.AnonBefore, _ = rss()
	debug.FreeOSMemory()
	released, err := releaseExecutable()
	res.Released = released
	res.FileAfter, res.AnonAfter, _ = rss()
	return res, err
}

// releaseExecutable applies MADV_DONTNEED to every read-only, file-backed,
// private mapping of the running executable that holds no anonymous page.
// On a MAP_PRIVATE mapping whose pages are all the file's, MADV_DONTNEED
// only drops the page-table entries: the next access maps the same
// page-cache page again (a minor fault). MADV_COLD would keep them mapped
// (no RSS change) and MADV_PAGEOUT would also evict them from the page
// cache, turning the next access into disk I/O.
func releaseExecutable() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	dev := fmt.Sprintf("%02x:%02x", major(uint64(st.Dev)), minor(uint64(st.Dev)))
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	var released int64
	var errs []error
	for _, m := range parseSmaps(smaps) {
		if m.inode != uint64(st.Ino) || m.dev != dev || !releasable(m.perms) || m.anon != 0 {
			continue
		}
		_, _, e := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED)
		if e != 0 {
			errs = append(errs, fmt.Errorf("memtrim: madvise %x-%x: %w", m.start, m.end, e))
			continue
		}
		released += int64(m.end - m.start)
	}
	return released, errors.Join(errs...)
}

// releasable reports whether a mapping's permissions ("r-xp") allow
// MADV_DONTNEED without losing data: private and not writable.
func releasable(perms string) bool {
	return len(perms) == 4 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p'
}

// parseSmaps reads the header line and the Anonymous field of every
// region in the text of /proc/self/smaps. Lines it does not understand
// are skipped; a region without an Anonymous line counts as anonymous
// (never released).
func parseSmaps(b []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if m, ok := parseHeader(line); ok {
			m.anon = -1
			out = append(out, m)
			continue
		}
		if len(out) == 0 {
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok {
			f := bytes.Fields(v)
			if len(f) == 2 && string(f[1]) == "kB" {
				if kb, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
					out[len(out)-1].anon = kb << 10
				}
			}
		}
	}
	return out
}

// parseHeader parses "start-end perms offset dev inode [path]".
func parseHeader(line []byte) (mapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 5 {
		return mapping{}, false
	}
	lo, hi, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	inode, err3 := strconv.ParseUint(string(f[4]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || end <= start || len(f[1]) != 4 || !bytes.Contains(f[3], []byte(":")) {
		return mapping{}, false
	}
	return mapping{start: uintptr(start), end: uintptr(end), perms: string(f[1]), dev: string(f[3]), inode: inode}, true
}

// rss returns RssFile and RssAnon of this process in bytes.
func rss() (file, anon int64, err error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			file = kB(v)
		} else if v, ok := bytes.CutPrefix(line, []byte("RssAnon:")); ok {
			anon = kB(v)
		}
	}
	return file, anon, nil
}

func kB(v []byte) int64 {
	f := bytes.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return n << 10
}

// major and minor split a Linux dev_t (glibc's encoding).
func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }
