package logging

import (
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// Access log batching. Lines are collected in memory and written in whole
// lines, at most every FlushInterval and whenever a batch would pass the
// size limit. To a file the limit is 32 KB. To a shared stream (stderr,
// which the slog logger writes too, often a pipe) it is PIPE_BUF (4 KB):
// pipe writes up to that size are atomic, so an error log line can never
// land in the middle of an access line.
const (
	FlushInterval   = 100 * time.Millisecond
	fileBatchSize   = 32 << 10
	streamBatchSize = 4 << 10
)

// AccessLog writes one JSON line per request. It is safe for concurrent
// use; a nil *AccessLog (access_log = false) discards everything. Lines are
// formatted outside any lock; the lock only covers the copy into the batch
// (and the write when a batch is full).
type AccessLog struct {
	path      string // "" when writing to a stream
	batchSize int

	mu     sync.Mutex
	w      io.Writer // the file or the stream
	f      *os.File  // non-nil when we opened w ourselves
	buf    []byte
	closed bool
	err    error // first write error since the last Flush that reported it
	drops  uint64

	lines sync.Pool // *[]byte scratch for formatting

	stop chan struct{}
	done chan struct{}
}

// NewAccessLog opens the access log for basic.access_log. target "" or
// "-" writes to os.Stderr; anything else is a file opened for appending
// (created 0644). A background goroutine flushes every FlushInterval until
// Close.
func NewAccessLog(target string) (*AccessLog, error) {
	if target == "" || target == "-" {
		return NewAccessLogWriter(os.Stderr), nil
	}
	f, err := openAppend(target)
	if err != nil {
		return nil, err
	}
	a := newAccessLog(f, fileBatchSize)
	a.path, a.f = target, f
	return a, nil
}

// NewAccessLogWriter writes the access log to w, a stream shared with other
// writers (batches stay within PIPE_BUF). Close does not close w.
func NewAccessLogWriter(w io.Writer) *AccessLog {
	return newAccessLog(w, streamBatchSize)
}

func newAccessLog(w io.Writer, batch int) *AccessLog {
	a := &AccessLog{
		w:         w,
		batchSize: batch,
		buf:       make([]byte, 0, batch),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	a.lines.New = func() any { b := make([]byte, 0, 512); return &b }
	go a.flusher()
	return a
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("basic.access_log: %w", err)
	}
	return f, nil
}

func (a *AccessLog) flusher() {
	defer close(a.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			a.flushLocked()
			a.mu.Unlock()
		}
	}
}

// Log writes the access line of a finished request. traceID is the trace
// the request belongs to (tracing.TraceID gives it), "" to omit trace_id.
// It must be called before c is reset.
func (a *AccessLog) Log(c *httpx.Ctx, traceID string) {
	if a == nil {
		return
	}
	bp := a.lines.Get().(*[]byte)
	line := AppendAccess((*bp)[:0], c, time.Now(), traceID)
	a.write(line)
	if cap(line) <= 64<<10 { // do not pool the buffer of a monster line
		*bp = line
		a.lines.Put(bp)
	}
}

// write adds one formatted line (ending in '\n') to the batch.
func (a *AccessLog) write(line []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if len(a.buf)+len(line) > a.batchSize {
		a.flushLocked()
		if len(line) > a.batchSize {
			a.writeLocked(line)
			return
		}
	}
	a.buf = append(a.buf, line...)
}

func (a *AccessLog) flushLocked() {
	if len(a.buf) == 0 {
		return
	}
	a.writeLocked(a.buf)
	a.buf = a.buf[:0]
}

// writeLocked writes p; on error the lines are dropped (a full disk must
// not grow memory without bound) and the error is kept for Flush.
func (a *AccessLog) writeLocked(p []byte) {
	if _, err := a.w.Write(p); err != nil {
		a.drops += uint64(countLines(p))
		if a.err == nil {
			a.err = err
		}
	}
}

func countLines(p []byte) int {
	n := 0
	for _, b := range p {
		if b == '\n' {
			n++
		}
	}
	return n
}

// Flush writes the pending lines now. It returns the first write error
// since the previous Flush, if any.
func (a *AccessLog) Flush() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
	err := a.err
	a.err = nil
	return err
}

// Dropped returns how many lines were lost to write errors.
func (a *AccessLog) Dropped() uint64 {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.drops
}

// Reopen flushes and reopens the file (SIGUSR1 after logrotate moved it).
// Writing to a stream, it only flushes. When the new file cannot be opened
// the old one stays in use and the error is returned.
func (a *AccessLog) Reopen() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
	if a.f == nil || a.closed {
		return nil
	}
	f, err := openAppend(a.path)
	if err != nil {
		return err
	}
	old := a.f
	a.w, a.f = f, f
	return old.Close()
}

// Close stops the flusher, writes what is pending and closes the file it
// opened (never the stream). Lines logged after Close are dropped.
func (a *AccessLog) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done

	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
	err := a.err
	if a.f != nil {
		if cerr := a.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// AppendAccess appends the access line of c, as of now, ending in '\n'.
// Fields: time, level, msg, remote_addr, method, host, path, query (when
// non-empty), status, bytes, bytes_in, duration_ms, location, upstream,
// upstream_addr, upstream_ms (when an upstream was used), request_id (when
// set), trace_id (when non-empty), tls (the version, on TLS connections).
// path and query are split from the request target as received.
func AppendAccess(dst []byte, c *httpx.Ctx, now time.Time, traceID string) []byte {
	dst = append(dst, `{"time":"`...)
	dst = now.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","level":"INFO","msg":"access","remote_addr":`...)
	ip := c.ClientIP
	if !ip.IsValid() {
		ip = c.Conn.RemoteAddr.Addr()
	}
	if ip.IsValid() {
		dst = append(dst, '"')
		dst = ip.Unmap().AppendTo(dst)
		dst = append(dst, '"')
	} else {
		dst = append(dst, `""`...)
	}
	dst = append(dst, `,"method":`...)
	dst = AppendString(dst, c.Req.Method)
	dst = append(dst, `,"host":`...)
	dst = AppendString(dst, c.Req.Host)

	path, query := c.Req.Path, c.Req.RawQuery
	if c.Req.RequestURI != "" {
		path, query = c.Req.RequestURI, ""
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, query = path[:i], path[i+1:]
		}
	}
	dst = append(dst, `,"path":`...)
	dst = AppendString(dst, path)
	if query != "" {
		dst = append(dst, `,"query":`...)
		dst = AppendString(dst, query)
	}
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(c.Resp.Status), 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, c.BytesOut, 10)
	dst = append(dst, `,"bytes_in":`...)
	dst = strconv.AppendInt(dst, c.BytesIn, 10)
	dst = append(dst, `,"duration_ms":`...)
	var d time.Duration
	if !c.Start.IsZero() {
		d = now.Sub(c.Start)
	}
	dst = appendMillis(dst, d)
	dst = append(dst, `,"location":`...)
	dst = AppendString(dst, c.Location)
	dst = append(dst, `,"upstream":`...)
	dst = AppendString(dst, c.Upstream)
	dst = append(dst, `,"upstream_addr":`...)
	dst = AppendString(dst, c.UpstreamAddr)
	if c.UpstreamAddr != "" || c.UpstreamDuration > 0 {
		dst = append(dst, `,"upstream_ms":`...)
		dst = appendMillis(dst, c.UpstreamDuration)
	}
	if c.RequestID != "" {
		dst = append(dst, `,"request_id":`...)
		dst = AppendString(dst, c.RequestID)
	}
	if traceID != "" {
		dst = append(dst, `,"trace_id":`...)
		dst = AppendString(dst, traceID)
	}
	if c.Conn.TLS != nil {
		dst = append(dst, `,"tls":"`...)
		dst = append(dst, tlsVersion(c.Conn.TLS.Version)...)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

// appendMillis appends d in milliseconds with microsecond precision (a
// JSON number). Negative durations (clock steps) are written as 0.
func appendMillis(dst []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	return strconv.AppendFloat(dst, float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// tlsVersion is tls.VersionName without its allocation for unknown values.
func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS10:
		return "TLS 1.0"
	case tls.VersionSSL30: //nolint:staticcheck // naming an old peer is fine
		return "SSL 3.0"
	}
	return "unknown"
}
