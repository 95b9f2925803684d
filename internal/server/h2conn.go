package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The native HTTP/2 engine (RFC 9113). One reader goroutine per connection
// reads frames (x/net/http2's Framer) and decodes header blocks (x/net's
// hpack) straight into a pooled per-stream httpx.Ctx; each stream's handler
// runs on its own goroutine so that a slow upstream on one stream never
// holds up the others. Everything the goroutines share is guarded by one
// mutex per connection (h2conn.mu): the stream table, flow-control windows,
// the HPACK encoder and the output buffer.
//
// Writes are coalesced: frames are appended to a per-connection buffer and
// one goroutine at a time (the "flusher") writes the buffer to the socket
// outside the mutex, while others keep appending to a second buffer. A
// handler finishing its response yields once (runtime.Gosched) before it
// writes, so the responses of other streams that are ready at the same
// moment leave in the same write: HEADERS, DATA and END_STREAM of small
// responses cost one syscall (and one TLS record) for several streams.
//
// While it serves frames the reader never writes to the socket itself (a
// client that does not read while it writes could deadlock it): frames it
// queues (SETTINGS and PING acks, RST_STREAM, GOAWAY) are written by a
// short-lived flusher goroutine. (It writes only our first SETTINGS, before
// reading anything, and the last frames when the connection ends.)
//
// Defences: streams past h2MaxConcurrentStreams are refused; streams the
// client resets (or we refuse) spend tokens of a bucket (rapid reset,
// CVE-2023-44487), an empty bucket is GOAWAY ENHANCE_YOUR_CALM; a header
// block's wire size is bounded across CONTINUATION frames (CONTINUATION
// flood); control frames queued while the client does not read are
// bounded (ping and settings floods); every wait of a handler for the
// client (window, body) is bounded by the send timeout.

// HTTP/2 limits and defaults. Our receive windows bound what a client may
// make us buffer: h2StreamWindow per stream, h2ConnWindow in total.
const (
	h2MaxConcurrentStreams = 250
	h2StreamWindow         = 256 << 10
	h2ConnWindow           = 1 << 20
	h2MaxFrameSize         = 16384 // what we read (the RFC default, not advertised)
	h2DefaultWindow        = 65535
	h2MaxWindow            = 1<<31 - 1
	// h2FlushAt is the output buffer size past which a writer flushes
	// instead of letting bytes accumulate; h2MaxBuffered is where writers
	// wait for the flusher (backpressure).
	h2FlushAt     = 32 << 10
	h2MaxBuffered = 128 << 10
	// h2KeepBuf is the largest output buffer kept for reuse.
	h2KeepBuf = 64 << 10
	// h2MaxQueuedControl bounds the control frames (acks, resets) queued
	// while the client does not read: ping and settings floods.
	h2MaxQueuedControl = 10000
	// Rapid reset (CVE-2023-44487): streams the client resets (or that we
	// refuse) spend tokens; h2ResetBurst of them at once, refilled at
	// h2ResetRate per second. An empty bucket ends the connection with
	// GOAWAY ENHANCE_YOUR_CALM.
	h2ResetBurst = 500
	h2ResetRate  = 100
	// h2HeaderFrameCost is what each HEADERS/CONTINUATION frame costs
	// against a header block's wire budget on top of its bytes, so that a
	// flood of empty CONTINUATION frames runs out too.
	h2HeaderFrameCost = 128
)

var (
	errH2StreamReset = errors.New("server: HTTP/2 stream reset")
	errH2ConnClosed  = errors.New("server: HTTP/2 connection closed")
	errH2Timeout     = errors.New("server: HTTP/2 flow-control or body wait timed out")
)

// h2Upgrade carries an h2c upgrade (RFC 7540 §3.2) into serveH2: the
// client's HTTP2-Settings payload. The upgrading request itself is in the
// HTTP/1 Ctx of the conn and becomes stream 1.
type h2Upgrade struct {
	settings []byte
}

// h2conn is one HTTP/2 connection.
type h2conn struct {
	c    *conn
	srv  *Server
	opts *Options
	fr   *http2.Framer

	// Reader-only state.
	dec        *hpack.Decoder
	blk        hdrBlock  // the header block being decoded
	resetTok   float64   // rapid-reset bucket
	resetAt    time.Time // last refill
	readDL     time.Time // read deadline last set
	preface    bool      // the client's SETTINGS came
	blockStart time.Time // when the header block in progress began

	wg sync.WaitGroup // stream goroutines and flushers

	mu       sync.Mutex
	sendCond sync.Cond // send-side waits: windows, backpressure (L = &mu)
	streams  map[uint32]*h2stream
	active   int    // streams counted against the concurrency limit
	lastID   uint32 // highest client stream id seen
	// recentRST holds the last streams we reset (see writeRSTLocked).
	recentRST  [32]uint32
	recentNext int
	goAway     bool   // GOAWAY sent: no new streams
	goAwayID   uint32 // the last stream id it allowed
	closed     bool   // the connection is dead: no more frames queue
	werr       error  // why

	// Output.
	wbuf, wspare []byte
	flushing     bool
	sendWaiters  int
	ctrlQueued   int
	henc         *hpack.Encoder
	hbuf         h2buf
	lower        [16][2]string // lowercased response field names (cache)
	lowerNext    int
	dateSec      int64
	date         string
	clN          int64 // last Content-Length sent and its text
	clS          string

	// Peer settings and windows.
	sendWindow   int64 // connection send window
	peerWindow   int64 // SETTINGS_INITIAL_WINDOW_SIZE of the client
	peerMaxFrame int
	recvWindow   int64 // what the client may still send on the connection
	recvCredit   int64 // consumed bytes not yet returned by WINDOW_UPDATE
}

// h2buf is an io.Writer appending to a byte slice: the Framer writes frames
// into the connection's output buffer through it, the HPACK encoder header
// blocks into a scratch one.
type h2buf struct{ b *[]byte }

func (w h2buf) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// serveH2 serves the connection as HTTP/2 until it ends. The client's
// preface is still unread in c.br (prior knowledge, TLS) or still to come
// (upgrade). The caller finishes the connection.
func (c *conn) serveH2(up *h2Upgrade) {
	c.state.Store(stateActive)
	if c.br == nil {
		c.br = c.srv.pools.getReader(&c.cr)
	}
	if c.bw != nil {
		// HTTP/2 has its own output buffers.
		c.srv.pools.putWriter(c.bw)
		c.bw = nil
	}
	if up == nil && c.reqState != nil {
		// Nor does it use the HTTP/1 request state (an upgrade still
		// reads its request from it).
		c.srv.pools.putReq(c.reqState)
		c.reqState = nil
	}
	s := c.srv
	h := &h2conn{
		c:            c,
		srv:          s,
		opts:         c.opts,
		streams:      make(map[uint32]*h2stream),
		sendWindow:   h2DefaultWindow,
		peerWindow:   h2DefaultWindow,
		peerMaxFrame: 16384,
		recvWindow:   h2ConnWindow,
		resetTok:     h2ResetBurst,
		resetAt:      time.Now(),
	}
	h.sendCond.L = &h.mu
	h.fr = http2.NewFramer(h2buf{&h.wbuf}, c.br)
	h.fr.SetMaxReadFrameSize(h2MaxFrameSize)
	h.fr.SetReuseFrames()
	var hb []byte
	h.hbuf.b = &hb
	h.henc = hpack.NewEncoder(h.hbuf)
	h.dec = hpack.NewDecoder(4096, h.onField)
	h.dec.SetMaxStringLength(h.opts.MaxHeaderBytes)

	s.mu.Lock()
	s.h2conns[h] = struct{}{}
	closing := s.closing.Load()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.h2conns, h)
		s.mu.Unlock()
	}()

	h.serve(up, closing)
}

func (h *h2conn) logDebug(msg string, args ...any) {
	if h.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
		h.opts.Logger.Debug(msg, append(args, "remote", h.c.remote)...)
	}
}

func (h *h2conn) serve(up *h2Upgrade, closing bool) {
	c := h.c
	start := time.Now()
	h.mu.Lock()
	h.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(h.opts.MaxHeaderBytes)},
	)
	h.fr.WriteWindowUpdate(0, h2ConnWindow-h2DefaultWindow)
	h.mu.Unlock()

	if up != nil {
		if err := h.applySettingsPayload(up.settings); err != nil {
			h.mu.Lock()
			h.failLocked(err)
			h.mu.Unlock()
			h.finish(err)
			return
		}
	}
	h.mu.Lock()
	h.flushLocked(false)
	h.mu.Unlock()

	// The client preface (RFC 9113 §3.4), within the head timeout.
	c.rwc.SetReadDeadline(start.Add(h.opts.ReadHeaderTimeout))
	h.readDL = start.Add(h.opts.ReadHeaderTimeout)
	var pre [len(h2Preface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != h2Preface {
		h.logDebug("bad HTTP/2 preface", "err", err)
		h.mu.Lock()
		h.goAwayLocked(http2.ErrCodeProtocol)
		h.mu.Unlock()
		h.finish(errH2ConnClosed)
		return
	}
	if up != nil {
		h.startUpgradeStream()
	}
	if closing {
		h.startGoAway()
	}
	h.finish(h.readLoop())
}

// readLoop reads and handles frames until the connection ends; it returns
// nil for a graceful end (GOAWAY sent and every stream done).
func (h *h2conn) readLoop() error {
	c := h.c
	for {
		h.mu.Lock()
		if h.goAway && h.active == 0 {
			h.mu.Unlock()
			return nil
		}
		if h.closed {
			err := h.werr
			h.mu.Unlock()
			return err
		}
		// Frames the reader queued go out once it has handled what was
		// buffered (one write for a burst of acks), or earlier when many
		// pile up.
		if len(h.wbuf) > 0 && (c.br.Buffered() == 0 || h.ctrlQueued >= 64) {
			h.kickLocked()
		}
		h.setReadDeadlineLocked()
		h.mu.Unlock()

		fh, err := h.fr.ReadFrameHeader()
		var f http2.Frame
		if err == nil {
			f, err = h.fr.ReadFrameForHeader(fh)
			if err != nil && fh.Type == http2.FrameHeaders {
				// A HEADERS frame the Framer refused never reached the
				// HPACK decoder: the connection's header state is lost.
				err = http2.ConnectionError(http2.ErrCodeProtocol)
			}
		}
		if err != nil {
			if done, rerr := h.readError(err); done {
				return rerr
			}
			continue
		}
		if err := h.handleFrame(f); err != nil {
			return h.connError(err)
		}
	}
}

// setReadDeadlineLocked sets the read deadline for the wait ahead: the
// head timeout before the client's SETTINGS and inside a header block, the
// idle timeout without streams, none while streams are active (their
// handlers have their own timeouts). It only touches the timer on a change.
func (h *h2conn) setReadDeadlineLocked() {
	var dl time.Time
	switch {
	case h.goAway && h.active == 0:
		dl = aLongTimeAgo
	case !h.preface:
		dl = h.readDL
	case h.blk.active:
		dl = h.blockStart.Add(h.opts.ReadHeaderTimeout)
	case h.active == 0:
		// streamDone set the idle deadline when the last stream ended.
		dl = h.readDL
		if dl.IsZero() || dl.Equal(aLongTimeAgo) {
			dl = time.Now().Add(h.opts.IdleTimeout)
		}
	}
	if !dl.Equal(h.readDL) || dl.IsZero() != h.readDL.IsZero() {
		h.readDL = dl
		h.c.rwc.SetReadDeadline(dl)
	}
}

// readError handles a ReadFrame error. It reports whether the loop ends,
// and with what. Only stream errors let it go on: the Framer read the
// whole frame then.
func (h *h2conn) readError(err error) (bool, error) {
	var se http2.StreamError
	if errors.As(err, &se) {
		h.mu.Lock()
		h.resetStreamLocked(se.StreamID, se.Code)
		h.mu.Unlock()
		return false, nil
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return true, h.connError(err)
	}
	if errors.Is(err, http2.ErrFrameTooLarge) {
		return true, h.connError(http2.ConnectionError(http2.ErrCodeFrameSize))
	}
	if isTimeout(err) {
		h.mu.Lock()
		defer h.mu.Unlock()
		switch {
		case h.goAway && h.active == 0, h.closed:
			return true, nil
		case !h.preface || h.blk.active:
			h.goAwayLocked(http2.ErrCodeProtocol)
			return true, err
		case h.active == 0:
			// Idle timeout: say goodbye.
			h.goAwayLocked(http2.ErrCodeNo)
			return true, nil
		}
		// With streams active no deadline is set for the reader; a
		// timeout then may have cut a frame in half: the connection
		// cannot go on.
		return true, err
	}
	return true, err
}

// connError ends the connection for a protocol violation: GOAWAY with the
// error's code.
func (h *h2conn) connError(err error) error {
	code := http2.ErrCodeProtocol
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		code = http2.ErrCode(ce)
	}
	h.logDebug("HTTP/2 connection error", "err", err)
	h.mu.Lock()
	h.goAwayLocked(code)
	h.mu.Unlock()
	return err
}

// goAwayLocked queues GOAWAY with code; a non-zero code also ends the
// connection once it is written.
func (h *h2conn) goAwayLocked(code http2.ErrCode) {
	if h.closed {
		return
	}
	if !h.goAway || code != http2.ErrCodeNo {
		h.fr.WriteGoAway(h.lastID, code, nil)
	}
	if !h.goAway {
		h.goAwayID = h.lastID
	}
	h.goAway = true
}

// startGoAway begins a graceful shutdown (Server.Shutdown): GOAWAY now,
// the connection closes once the streams in flight are done.
func (h *h2conn) startGoAway() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.goAway || h.closed {
		return
	}
	h.goAwayLocked(http2.ErrCodeNo)
	h.kickLocked()
	if h.active == 0 {
		h.pokeReaderLocked()
	}
}

// pokeReaderLocked makes the reader's blocked read return, so that it sees
// a state change (graceful end).
func (h *h2conn) pokeReaderLocked() {
	h.readDL = aLongTimeAgo
	h.c.rwc.SetReadDeadline(aLongTimeAgo)
}

// finish ends the connection: writes what is queued (a GOAWAY), stops the
// streams and waits for their goroutines. After a GOAWAY on a healthy
// connection it lingers (half-close, discard input for a while) so that a
// client still sending does not turn our close into a reset that destroys
// the GOAWAY.
func (h *h2conn) finish(err error) {
	c := h.c
	h.mu.Lock()
	linger := false
	if !h.closed {
		if h.flushing {
			// A client that does not read must not hold the end for the
			// whole send timeout.
			c.nc.SetWriteDeadline(time.Now().Add(lingerTimeout))
		}
		for h.flushing && !h.closed {
			h.sendWaiters++
			h.sendCond.Wait()
			h.sendWaiters--
		}
		h.flushLocked(false)
		linger = h.goAway && !h.closed
		if err == nil {
			err = errH2ConnClosed
		}
		h.failLocked(err)
	}
	h.mu.Unlock()
	if linger {
		c.linger()
	}
	c.nc.Close()
	h.wg.Wait()
}

// failLocked marks the connection dead: every stream is cancelled and
// every waiter woken.
func (h *h2conn) failLocked(err error) {
	if h.closed {
		return
	}
	h.closed = true
	h.werr = err
	for _, st := range h.streams {
		st.rstRecv = true
		st.rctx.cancel()
		st.rcond.Broadcast()
	}
	h.sendCond.Broadcast()
}

// asyncFlush is the flusher the reader starts for the frames it queued.
func (h *h2conn) asyncFlush() {
	defer h.wg.Done()
	h.mu.Lock()
	h.writeLoopLocked()
	h.mu.Unlock()
}

// kickLocked makes sure queued frames get written: by the running flusher,
// or by a new one.
func (h *h2conn) kickLocked() {
	if h.flushing || len(h.wbuf) == 0 || h.closed {
		return
	}
	h.flushing = true
	h.wg.Add(1)
	go h.asyncFlush()
}

// flushLocked writes the output buffer, unless a flusher is at it (it will
// take these bytes too). With yield, the goroutine first lets others that
// are ready run, so their frames join the same write.
func (h *h2conn) flushLocked(yield bool) {
	if h.flushing || len(h.wbuf) == 0 || h.closed {
		return
	}
	h.flushing = true
	if yield {
		h.mu.Unlock()
		runtime.Gosched()
		h.mu.Lock()
	}
	h.writeLoopLocked()
}

// writeLoopLocked is the flusher: it swaps buffers and writes outside the
// mutex until nothing is left. h.flushing is set by the caller.
func (h *h2conn) writeLoopLocked() {
	for len(h.wbuf) > 0 && !h.closed {
		buf := h.wbuf
		h.wbuf = h.wspare[:0]
		h.ctrlQueued = 0
		h.mu.Unlock()
		_, err := h.c.cw.Write(buf)
		h.mu.Lock()
		if cap(buf) <= h2KeepBuf {
			h.wspare = buf[:0]
		} else {
			h.wspare = nil
		}
		if err != nil {
			h.failLocked(err)
			// The reader may be blocked in a read: wake it.
			h.c.nc.SetReadDeadline(aLongTimeAgo)
		}
		if h.sendWaiters > 0 {
			h.sendCond.Broadcast()
		}
	}
	h.flushing = false
	if h.sendWaiters > 0 {
		h.sendCond.Broadcast()
	}
}

// queueControlLocked counts a control frame the reader queued; too many
// unwritten ones (the client does not read) end the connection.
func (h *h2conn) queueControlLocked() error {
	h.ctrlQueued++
	if h.ctrlQueued > h2MaxQueuedControl {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// spendResetToken charges one client-reset (or refused) stream; false
// means the client resets streams faster than allowed.
func (h *h2conn) spendResetToken() bool {
	now := time.Now()
	h.resetTok = min(h2ResetBurst, h.resetTok+now.Sub(h.resetAt).Seconds()*h2ResetRate)
	h.resetAt = now
	if h.resetTok < 1 {
		return false
	}
	h.resetTok--
	return true
}

// writeRSTLocked queues RST_STREAM and remembers the stream: frames the
// client sent before it saw the reset are then ignored, not taken for a
// protocol error.
func (h *h2conn) writeRSTLocked(id uint32, code http2.ErrCode) {
	h.fr.WriteRSTStream(id, code)
	h.recentRST[h.recentNext] = id
	h.recentNext = (h.recentNext + 1) % len(h.recentRST)
}

func (h *h2conn) resetRecentlyLocked(id uint32) bool {
	for _, r := range h.recentRST {
		if r == id {
			return true
		}
	}
	return false
}

// resetStreamLocked sends RST_STREAM for id and stops its handler.
func (h *h2conn) resetStreamLocked(id uint32, code http2.ErrCode) {
	if h.closed || id == 0 {
		return
	}
	h.writeRSTLocked(id, code)
	h.ctrlQueued++
	if st := h.streams[id]; st != nil {
		st.rstRecv = true // no more frames from us either
		h.closeRemoteLocked(st)
		st.rctx.cancel()
		st.rcond.Broadcast()
		h.sendCond.Broadcast()
	}
}

// handleFrame handles one frame on the reader goroutine.
func (h *h2conn) handleFrame(f http2.Frame) error {
	if !h.preface {
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		h.preface = true
		h.mu.Lock()
		h.readDL = time.Time{}
		h.c.rwc.SetReadDeadline(time.Time{})
		h.mu.Unlock()
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		return h.onHeaders(f)
	case *http2.ContinuationFrame:
		return h.onContinuation(f)
	case *http2.DataFrame:
		return h.onData(f)
	case *http2.SettingsFrame:
		return h.onSettings(f)
	case *http2.WindowUpdateFrame:
		return h.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.fr.WritePing(true, f.Data)
		return h.queueControlLocked()
	case *http2.RSTStreamFrame:
		return h.onRSTStream(f)
	case *http2.GoAwayFrame:
		h.mu.Lock()
		h.goAwayLocked(http2.ErrCodeNo)
		h.mu.Unlock()
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// PRIORITY, PRIORITY_UPDATE and unknown frame types are ignored.
	return nil
}

func (h *h2conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := f.ForeachSetting(h.applySettingLocked); err != nil {
		return err
	}
	h.fr.WriteSettingsAck()
	return h.queueControlLocked()
}

// applySettingsPayload applies the HTTP2-Settings of an h2c upgrade: a
// SETTINGS payload, acknowledged implicitly (RFC 7540 §3.2.1).
func (h *h2conn) applySettingsPayload(p []byte) error {
	if len(p)%6 != 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ; len(p) > 0; p = p[6:] {
		s := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:])}
		if err := h.applySettingLocked(s); err != nil {
			return err
		}
	}
	return nil
}

func (h *h2conn) applySettingLocked(s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	switch s.ID {
	case http2.SettingHeaderTableSize:
		h.henc.SetMaxDynamicTableSizeLimit(min(s.Val, 4096))
	case http2.SettingInitialWindowSize:
		delta := int64(s.Val) - h.peerWindow
		h.peerWindow = int64(s.Val)
		for _, st := range h.streams {
			st.sendWindow += delta
			if st.sendWindow > h2MaxWindow {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
		h.sendCond.Broadcast()
	case http2.SettingMaxFrameSize:
		h.peerMaxFrame = int(s.Val)
	}
	return nil
}

func (h *h2conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.StreamID == 0 {
		h.sendWindow += int64(f.Increment)
		if h.sendWindow > h2MaxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		if h.sendWaiters > 0 {
			h.sendCond.Broadcast()
		}
		return nil
	}
	if f.StreamID > h.lastID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st := h.streams[f.StreamID]
	if st == nil || st.rstRecv {
		return nil
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > h2MaxWindow {
		h.resetStreamLocked(f.StreamID, http2.ErrCodeFlowControl)
		return h.queueControlLocked()
	}
	if h.sendWaiters > 0 {
		h.sendCond.Broadcast()
	}
	return nil
}

func (h *h2conn) onRSTStream(f *http2.RSTStreamFrame) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.StreamID > h.lastID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st := h.streams[f.StreamID]
	if st == nil || st.rstRecv {
		return nil
	}
	st.rstRecv = true
	h.closeRemoteLocked(st)
	st.rctx.cancel()
	st.rcond.Broadcast()
	h.sendCond.Broadcast()
	if !st.handlerDone && !h.spendResetToken() {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// closeRemoteLocked records that the client sends nothing more on st
// (END_STREAM, or a reset either way). Unread buffered bytes go back to the
// connection window when the stream ends (streamDone).
func (h *h2conn) closeRemoteLocked(st *h2stream) {
	st.remoteDone = true
}

// shortBodyLocked handles a request stream the client ended before its
// content-length: malformed (RFC 9113 §8.1.1), so whoever reads the body
// gets an error, never a clean end. The stream is reset with
// PROTOCOL_ERROR, unless our complete response went out already: then
// both sides have ended the stream, which is closed (no frame may be sent
// on it, §5.1). Clients end an upload that way once answered early
// (curl after a 401 or 413), and must not see an error for it.
func (h *h2conn) shortBodyLocked(st *h2stream) error {
	st.bodyErr = errH2ContentLength
	if st.sentEnd {
		h.closeRemoteLocked(st)
		st.rcond.Broadcast()
		return nil
	}
	h.resetStreamLocked(st.id, http2.ErrCodeProtocol)
	return h.queueControlLocked()
}

func (h *h2conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	h.mu.Lock()
	defer h.mu.Unlock()
	if id > h.lastID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	h.recvWindow -= n
	if h.recvWindow < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	st := h.streams[id]
	if st == nil || st.rstRecv || st.remoteDone {
		// A stream that is gone (or that we reset): the bytes still count
		// against the connection window; give them back.
		h.creditLocked(nil, n)
		switch {
		case st != nil && st.remoteDone && !st.rstRecv:
			// DATA after END_STREAM (RFC 9113 §5.1: half-closed remote).
			h.resetStreamLocked(id, http2.ErrCodeStreamClosed)
			return h.queueControlLocked()
		case st == nil && !h.resetRecentlyLocked(id) && !(h.goAway && id > h.goAwayID):
			// A stream closed normally (both sides ended it): a stream
			// error STREAM_CLOSED (§5.1). Frames on streams we reset are
			// ignored: the client may have sent them before it knew.
			h.writeRSTLocked(id, http2.ErrCodeStreamClosed)
			return h.queueControlLocked()
		}
		return nil
	}
	st.recvWindow -= n
	if st.recvWindow < 0 {
		h.creditLocked(nil, n)
		h.resetStreamLocked(id, http2.ErrCodeFlowControl)
		return h.queueControlLocked()
	}
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		h.creditLocked(st, pad)
	}
	st.received += int64(len(data))
	if st.declared >= 0 && st.received > st.declared {
		// More than Content-Length (RFC 9113 §8.1.1).
		h.creditLocked(nil, int64(len(data)))
		st.bodyErr = errH2ContentLength
		h.resetStreamLocked(id, http2.ErrCodeProtocol)
		return h.queueControlLocked()
	}
	if st.rpos > 0 && st.rpos >= len(st.rbuf)/2 {
		// Keep the unread part at the front: a body read as fast as it
		// comes must not grow the buffer.
		st.rbuf = st.rbuf[:copy(st.rbuf, st.rbuf[st.rpos:])]
		st.rpos = 0
	}
	st.rbuf = append(st.rbuf, data...)
	if f.StreamEnded() {
		if st.declared >= 0 && st.received != st.declared {
			return h.shortBodyLocked(st)
		}
		h.closeRemoteLocked(st)
	}
	st.rcond.Broadcast()
	return nil
}

// creditLocked returns n consumed (or discarded) bytes to the client's
// windows: the connection's, and st's when it still receives. Updates go
// out in batches of a quarter window.
func (h *h2conn) creditLocked(st *h2stream, n int64) {
	if n <= 0 || h.closed {
		return
	}
	h.recvCredit += n
	if h.recvCredit >= h2ConnWindow/4 {
		h.fr.WriteWindowUpdate(0, uint32(h.recvCredit))
		h.recvWindow += h.recvCredit
		h.recvCredit = 0
	}
	if st != nil && !st.remoteDone && !st.rstRecv {
		st.recvCredit += n
		if st.recvCredit >= h2StreamWindow/4 {
			h.fr.WriteWindowUpdate(st.id, uint32(st.recvCredit))
			st.recvWindow += st.recvCredit
			st.recvCredit = 0
		}
	}
}

// onHeaders starts a header block: a new request, or trailers.
func (h *h2conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	h.blockStart = time.Now()
	h.mu.Lock()
	st := h.streams[id]
	switch {
	case st != nil:
		// Trailers: they must end the stream (RFC 9113 §8.1).
		switch {
		case st.remoteDone || st.rstRecv:
			if !st.rstRecv {
				h.resetStreamLocked(id, http2.ErrCodeStreamClosed)
			}
			h.mu.Unlock()
			h.blk.begin(nil, id, false, f.StreamEnded())
		case !f.StreamEnded():
			h.resetStreamLocked(id, http2.ErrCodeProtocol)
			h.mu.Unlock()
			h.blk.begin(nil, id, false, false)
		default:
			h.mu.Unlock()
			h.blk.begin(nil, id, true, true)
		}
	case id <= h.lastID:
		if !h.resetRecentlyLocked(id) {
			// Stream ids going down (RFC 9113 §5.1.1).
			h.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		// A stream we reset (an early answer, a refusal): frames still
		// in flight are ignored (RFC 9113 §5.1), but the block is
		// decoded for the HPACK state.
		h.mu.Unlock()
		h.blk.begin(nil, id, false, false)
	default:
		h.lastID = id
		switch {
		case h.goAway:
			// Past our GOAWAY: ignored (RFC 9113 §6.8), but decoded for
			// the HPACK state.
			h.mu.Unlock()
			h.blk.begin(nil, id, false, false)
		case h.active >= h2MaxConcurrentStreams:
			h.writeRSTLocked(id, http2.ErrCodeRefusedStream)
			err := h.queueControlLocked()
			ok := h.spendResetToken()
			h.mu.Unlock()
			if err != nil {
				return err
			}
			if !ok {
				return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
			}
			h.blk.begin(nil, id, false, false)
		default:
			h.mu.Unlock()
			st = h.newStream(id)
			h.blk.begin(st, id, false, f.StreamEnded())
		}
	}
	return h.blockFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (h *h2conn) onContinuation(f *http2.ContinuationFrame) error {
	return h.blockFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

// blockFragment decodes one fragment of the header block in progress and
// completes the block at its end.
func (h *h2conn) blockFragment(frag []byte, end bool) error {
	b := &h.blk
	b.wire += len(frag) + h2HeaderFrameCost
	if b.wire > 2*h.opts.MaxHeaderBytes+64<<10 {
		// A header block far past the limit (CONTINUATION flood).
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	if _, err := h.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return nil
	}
	if err := h.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	b.active = false
	if b.trailers {
		return h.endTrailers(b.id)
	}
	st := b.st
	b.st = nil
	if st == nil {
		return nil
	}
	return h.endRequest(st)
}

// endTrailers applies a trailer block to its stream.
func (h *h2conn) endTrailers(id uint32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[id]
	if st == nil || st.rstRecv || st.remoteDone {
		return nil
	}
	if h.blk.bad != "" || h.blk.tooBig {
		st.bodyErr = errH2BadTrailers
		h.resetStreamLocked(st.id, http2.ErrCodeProtocol)
		return h.queueControlLocked()
	}
	if st.declared >= 0 && st.received != st.declared {
		return h.shortBodyLocked(st)
	}
	st.trailer.CopyFrom(&h.blk.trailer)
	h.blk.trailer.Reset()
	h.closeRemoteLocked(st)
	st.rcond.Broadcast()
	return nil
}

// endRequest completes a new stream's request and starts its handler.
func (h *h2conn) endRequest(st *h2stream) error {
	b := &h.blk
	if b.bad == "" {
		h.finishRequest(st)
	}
	if b.bad != "" {
		// Malformed (RFC 9113 §8.1.1): a stream error, no handler.
		h.logDebug("malformed HTTP/2 request", "err", b.bad)
		id := st.id
		h.releaseStream(st)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.writeRSTLocked(id, http2.ErrCodeProtocol)
		return h.queueControlLocked()
	}
	h.mu.Lock()
	h.streams[st.id] = st
	h.active++
	if b.endStream {
		st.remoteDone = true
	}
	h.mu.Unlock()
	h.wg.Add(1)
	go h.runStream(st)
	return nil
}

// startUpgradeStream makes the h2c upgrade request stream 1 (half-closed:
// only bodiless requests are upgraded).
func (h *h2conn) startUpgradeStream() {
	st := h.newStream(1)
	src := &h.c.ctx.Req
	req := &st.ctx.Req
	req.Method = src.Method
	req.RequestURI = src.RequestURI
	req.Path = src.Path
	req.RawQuery = src.RawQuery
	req.Host = src.Host
	req.Proto = "HTTP/2.0"
	for _, f := range src.Header.Fields() {
		switch {
		case httpx.EqualFold(f.Name, "Connection"), httpx.EqualFold(f.Name, "Upgrade"),
			httpx.EqualFold(f.Name, "HTTP2-Settings"), httpx.EqualFold(f.Name, "Keep-Alive"),
			httpx.EqualFold(f.Name, "Proxy-Connection"), httpx.EqualFold(f.Name, "TE"):
			continue
		}
		req.Header.Add(f.Name, f.Value)
	}
	req.ContentLength = 0
	st.body.ResetNone()
	h.setupCtx(st)
	h.mu.Lock()
	h.lastID = 1
	h.streams[1] = st
	h.active++
	st.remoteDone = true
	h.mu.Unlock()
	h.wg.Add(1)
	go h.runStream(st)
}
