package cache

// The disk tier: one file per stored response (one per Vary variant) in
// `dir`, written through when an entry is stored, so it survives restarts
// and reloads.
//
// File name: 32 hex digits of FNV-128a(key) for a response without Vary;
// with Vary, "-" and 16 hex digits of FNV-64a(Vary values) follow. The
// name only locates a file: the key and Vary values inside it are checked
// on every read.
//
// File layout (all integers little-endian):
//
//	magic   "PGC1"           4 bytes
//	hdrLen  uint32           length of the metadata block
//	bodyLen uint64
//	hdrCRC  uint32           CRC-32C of the metadata block
//	bodyCRC uint32           CRC-32C of the body
//	metadata                 key, status, times, validators' header fields
//	body
//
// Files are written to ".tmp-*" in dir and renamed into place, so a reader
// (this instance, another instance sharing dir during a reload, or the
// next process) sees either the old or the new complete file. There is no
// fsync: after a crash a file may be short or garbled; the lengths and
// CRCs catch that and such files are removed. Two instances on one dir
// each keep their own index and bound; one may delete a file the other
// still lists, which the other then treats as a miss.

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	fileMagic     = "PGC1"
	filePrefixLen = 24
	// maxHeaderBlock bounds the metadata block a reader accepts.
	maxHeaderBlock = 1 << 20
	// tmpMaxAge is how old a leftover temp file must be before a scan
	// removes it (a younger one may be another instance's write).
	tmpMaxAge = time.Hour
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errBadFile  = errors.New("cache: malformed cache file")
	errTooLarge = errors.New("cache: cache file larger than this instance stores")
)

// fileName is the disk file name of the variant of key with Vary values
// varyVals.
func fileName(key string, varyVals []string) string {
	h := fnv.New128a()
	io.WriteString(h, key)
	var sum [16]byte
	name := hexString(h.Sum(sum[:0]))
	if len(varyVals) == 0 {
		return name
	}
	v := fnv.New64a()
	for _, s := range varyVals {
		io.WriteString(v, s)
		v.Write([]byte{0})
	}
	return name + "-" + hexString(v.Sum(sum[:0]))
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// ourFileName reports whether name has the shape fileName produces, so a
// scan never touches files it did not write.
func ourFileName(name string) bool {
	isHex := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
				return false
			}
		}
		return true
	}
	switch len(name) {
	case 32:
		return isHex(name)
	case 32 + 1 + 16:
		return isHex(name[:32]) && name[32] == '-' && isHex(name[33:])
	}
	return false
}

// encodeMeta appends the metadata block of e.
func encodeMeta(dst []byte, e *entry) []byte {
	str := func(s string) {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	str(e.key)
	dst = binary.AppendUvarint(dst, uint64(e.status))
	dst = binary.AppendVarint(dst, e.storedAt.UnixNano())
	dst = binary.AppendVarint(dst, int64(e.initialAge))
	dst = binary.AppendVarint(dst, int64(e.freshFor))
	var flags byte
	if e.mustRevalidate {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, int64(e.swr))
	dst = binary.AppendVarint(dst, int64(e.sie))
	dst = binary.AppendVarint(dst, e.contentLength)
	dst = binary.AppendUvarint(dst, uint64(len(e.vary)))
	for i, name := range e.vary {
		str(name)
		str(e.varyVals[i])
	}
	fields := e.header.Fields()
	dst = binary.AppendUvarint(dst, uint64(len(fields)))
	for _, f := range fields {
		str(f.Name)
		str(f.Value)
	}
	return dst
}

// metaReader decodes a metadata block; any error sticks. It reads from a
// string so decoded strings share its memory (one allocation per file).
type metaReader struct {
	b   string
	bad bool
}

// uvarint and varint mirror encoding/binary for a string.
func (r *metaReader) rawUvarint() (uint64, int) {
	var x uint64
	var s uint
	for i := 0; i < len(r.b) && i < binary.MaxVarintLen64; i++ {
		c := r.b[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

func (r *metaReader) uvarint() uint64 {
	v, n := r.rawUvarint()
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) varint() int64 {
	ux := r.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (r *metaReader) str() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *metaReader) byte1() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// decodeMeta rebuilds an entry (without body) from a metadata block.
func decodeMeta(b []byte) (*entry, error) {
	r := metaReader{b: string(b)}
	e := &entry{key: r.str()}
	status := r.uvarint()
	e.storedAt = time.Unix(0, r.varint())
	e.initialAge = time.Duration(r.varint())
	e.freshFor = time.Duration(r.varint())
	e.mustRevalidate = r.byte1()&1 != 0
	e.swr = time.Duration(r.varint())
	e.sie = time.Duration(r.varint())
	e.contentLength = r.varint()
	nv := r.uvarint()
	if r.bad || nv > maxVariants*4 || status < 100 || status > 999 || e.key == "" {
		return nil, errBadFile
	}
	e.status = int(status)
	for i := uint64(0); i < nv && !r.bad; i++ {
		e.vary = append(e.vary, r.str())
		e.varyVals = append(e.varyVals, r.str())
	}
	nf := r.uvarint()
	if r.bad || nf > uint64(len(r.b)) {
		return nil, errBadFile
	}
	for i := uint64(0); i < nf && !r.bad; i++ {
		name := r.str()
		e.header.Add(name, r.str())
	}
	if r.bad || len(r.b) != 0 {
		return nil, errBadFile
	}
	e.finish(0)
	return e, nil
}

// writeEntryFile writes e (with its body) to dir atomically and returns
// the file's path and size.
func writeEntryFile(dir string, e *entry) (string, int64, error) {
	meta := encodeMeta(make([]byte, filePrefixLen, filePrefixLen+256+len(e.key)), e)
	hdr := meta[:filePrefixLen]
	copy(hdr, fileMagic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(meta)-filePrefixLen))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(e.body)))
	binary.LittleEndian.PutUint32(hdr[16:], crc32.Checksum(meta[filePrefixLen:], castagnoli))
	binary.LittleEndian.PutUint32(hdr[20:], crc32.Checksum(e.body, castagnoli))
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	_, err = f.Write(meta)
	if err == nil {
		_, err = f.Write(e.body)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	path := filepath.Join(dir, fileName(e.key, e.varyVals))
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, err
	}
	return path, int64(len(meta) + len(e.body)), nil
}

// readEntryFile reads and checks the file at path. With body false only
// the metadata is read (a scan); the returned entry then has bodyLen set
// and no body. A body longer than maxBody is refused before reading.
func readEntryFile(path string, body bool, maxBody int64) (*entry, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	var pre [filePrefixLen]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil {
		return nil, 0, errBadFile
	}
	hdrLen := int64(binary.LittleEndian.Uint32(pre[4:]))
	bodyLen := binary.LittleEndian.Uint64(pre[8:])
	if bodyLen > uint64(maxBody) && bodyLen <= uint64(size) {
		return nil, 0, errTooLarge // valid maybe, but not for us: keep it
	}
	if string(pre[:4]) != fileMagic || hdrLen > maxHeaderBlock || bodyLen > uint64(size) ||
		filePrefixLen+hdrLen+int64(bodyLen) != size {
		return nil, 0, errBadFile
	}
	n := hdrLen
	if body {
		n += int64(bodyLen)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, 0, errBadFile
	}
	meta := buf[:hdrLen]
	if crc32.Checksum(meta, castagnoli) != binary.LittleEndian.Uint32(pre[16:]) {
		return nil, 0, errBadFile
	}
	e, err := decodeMeta(meta)
	if err != nil {
		return nil, 0, err
	}
	e.bodyLen = int64(bodyLen)
	if body {
		b := buf[hdrLen:]
		if crc32.Checksum(b, castagnoli) != binary.LittleEndian.Uint32(pre[20:]) {
			return nil, 0, errBadFile
		}
		e.body = b
		e.size += int64(len(b))
	}
	return e, size, nil
}

// scanDir rebuilds the disk index from dir: valid files are indexed
// (oldest stored first, so the LRU evicts the oldest when dir_max_size is
// exceeded), malformed ones and old temp files are removed. Files with
// names this package does not produce are left alone. It runs while the
// plugin serves: a variant already indexed (stored or loaded meanwhile) is
// kept. Files with bodies over maxBody (max_entry_size) are removed too.
// It stops early when stop is closed. It returns the entries indexed,
// their bytes, and the files removed.
func (s *store) scanDir(stop <-chan struct{}, maxBody int64) (indexed int, bytes int64, removed int, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, 0, 0, err
	}
	remove := func(path string) {
		if os.Remove(path) == nil {
			removed++
		}
	}
	type found struct {
		e    *entry
		size int64
	}
	var all []found
	now := time.Now()
	for _, de := range ents {
		select {
		case <-stop:
			return 0, 0, removed, nil
		default:
		}
		name := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(s.dir, name)
		if strings.HasPrefix(name, ".tmp-") {
			if fi, err := de.Info(); err == nil && now.Sub(fi.ModTime()) > tmpMaxAge {
				remove(path)
			}
			continue
		}
		if !ourFileName(name) {
			continue
		}
		e, size, err := readEntryFile(path, false, maxBody)
		if err != nil {
			if err == errBadFile || err == errTooLarge {
				remove(path) // corrupt, truncated, or too large to serve
			}
			continue
		}
		if fileName(e.key, e.varyVals) != name {
			remove(path)
			continue
		}
		e.file, e.size = path, size
		all = append(all, found{e, size})
	}
	// Newest first, each behind what is indexed: when a shard is full the
	// rest (older) files are deleted, and entries stored by requests
	// meanwhile (newer) are never pushed out by old ones.
	slices.SortFunc(all, func(a, b found) int { return b.e.storedAt.Compare(a.e.storedAt) })
	full := map[*shard]bool{} // a shard refused one: every older file goes
	for _, f := range all {
		sh := s.shardFor([]byte(f.e.key))
		sh.mu.Lock()
		has := sh.disk.has(f.e)
		ok := !has && !full[sh] && sh.disk.insertOld(f.e)
		if !ok && !has && sh.disk.lru.size+f.e.size > sh.disk.lru.capacity {
			full[sh] = true
		}
		sh.mu.Unlock()
		switch {
		case ok:
			indexed++
			bytes += f.size
		case !has:
			// No room, or superseded by a newer entry for the key.
			remove(f.e.file)
		}
	}
	return indexed, bytes, removed, nil
}

// except drops the entries whose file is path (a newer write replaced
// them in place: the file is the new one).
func except(entries []*entry, path string) []*entry {
	out := entries[:0]
	for _, e := range entries {
		if e.file != path {
			out = append(out, e)
		}
	}
	return out
}

func removeFiles(entries []*entry) {
	for _, e := range entries {
		if e.file != "" {
			os.Remove(e.file)
		}
	}
}
