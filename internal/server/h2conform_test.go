package server

// Black-box HTTP/2 conformance checks (RFC 9113), in the spirit of h2spec:
// raw frames over h2c prior knowledge, written with x/net's Framer, and
// the reactions the RFC requires read back. They hold for whichever
// HTTP/2 engine the server uses. Where the RFC lets an endpoint treat a
// stream error as a connection error, either reaction passes.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// confPeer is a raw HTTP/2 client connection.
type confPeer struct {
	t        *testing.T
	nc       net.Conn
	fr       *http2.Framer
	hbuf     bytes.Buffer
	enc      *hpack.Encoder
	settings map[http2.SettingID]uint32 // the server's
}

// confDial connects with prior knowledge, sends the preface and settings,
// and reads the server's SETTINGS (acknowledging them).
func confDial(t *testing.T, addr string, settings ...http2.Setting) *confPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &confPeer{t: t, nc: nc, fr: http2.NewFramer(nc, nc), settings: map[http2.SettingID]uint32{}}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	p.fr.MaxHeaderListSize = 1 << 20
	p.enc = hpack.NewEncoder(&p.hbuf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := p.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	for {
		f := p.read()
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error { p.settings[s.ID] = s.Val; return nil })
			if err := p.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
}

// read returns the next frame (fatal after 5s or on a read error).
func (p *confPeer) read() http2.Frame {
	p.t.Helper()
	f, err := p.next(5 * time.Second)
	if err != nil {
		p.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (p *confPeer) next(d time.Duration) (http2.Frame, error) {
	p.nc.SetReadDeadline(time.Now().Add(d))
	return p.fr.ReadFrame()
}

// block encodes header fields given as name, value pairs.
func (p *confPeer) block(kv ...string) []byte {
	p.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(p.hbuf.Bytes())
}

// get is a well-formed request head for path.
func confGet(path string, extra ...string) []string {
	return append([]string{":method", "GET", ":scheme", "http", ":authority", "h2.test", ":path", path}, extra...)
}

func (p *confPeer) headers(id uint32, endStream bool, kv ...string) {
	p.t.Helper()
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(kv...), EndStream: endStream, EndHeaders: true}); err != nil {
		p.t.Fatal(err)
	}
}

// response collects stream id's response: status, header fields, body and
// trailers, answering nothing else. Fatal on a reset or GOAWAY.
type confResponse struct {
	status   string
	header   map[string]string
	body     []byte
	trailer  map[string]string
	dataSeen int // DATA frames
}

func (p *confPeer) response(id uint32) confResponse {
	p.t.Helper()
	var r confResponse
	for {
		switch f := p.read().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			m := map[string]string{}
			for _, hf := range f.Fields {
				m[hf.Name] = hf.Value
			}
			if r.header == nil {
				r.header, r.status = m, m[":status"]
				if strings.HasPrefix(r.status, "1") {
					r.header, r.status = nil, ""
					continue
				}
			} else {
				r.trailer = m
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			r.dataSeen++
			r.body = append(r.body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				p.fr.WriteWindowUpdate(0, uint32(n))
				p.fr.WriteWindowUpdate(id, uint32(n))
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				p.t.Fatalf("stream %d reset: %v", id, f.ErrCode)
			}
		case *http2.GoAwayFrame:
			p.t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		}
	}
}

// expectError waits for a RST_STREAM carrying code on stream (accepted only
// when streamOK) or a GOAWAY carrying code. A connection closed without a
// GOAWAY fails: the RFC asks for one.
func (p *confPeer) expectError(stream uint32, code http2.ErrCode, streamOK bool) {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f, err := p.next(time.Until(deadline))
		if err != nil {
			p.t.Fatalf("want %v (stream %d), got read error %v", code, stream, err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if streamOK && f.StreamID == stream {
				if f.ErrCode != code {
					p.t.Fatalf("RST_STREAM %v on stream %d, want %v", f.ErrCode, stream, code)
				}
				return
			}
		case *http2.GoAwayFrame:
			if f.ErrCode != code {
				p.t.Fatalf("GOAWAY %v (%q), want %v", f.ErrCode, f.DebugData(), code)
			}
			return
		case *http2.MetaHeadersFrame:
			// "For malformed requests, a server MAY send an HTTP response
			// prior to closing or resetting the stream" (RFC 9113 §8.1.1).
			if streamOK && f.StreamID == stream && strings.HasPrefix(f.PseudoValue("status"), "4") {
				return
			}
		}
	}
	p.t.Fatalf("no %v within 5s", code)
}

func confStartH2C(t *testing.T, h Handler, opts Options) string {
	t.Helper()
	opts.H2C = true
	addr, _ := startServer(t, h, opts)
	return addr
}

func TestH2ConformRequests(t *testing.T) {
	addr := confStartH2C(t, HandlerFunc(echo), Options{})
	p := confDial(t, addr)

	// A GET, then a POST whose body arrives in three DATA frames.
	p.headers(1, true, confGet("/a/../b?q=1")...)
	if r := p.response(1); r.status != "200" || r.header["x-method"] != "GET" || r.header["x-path"] != "/b" || r.header["x-query"] != "q=1" || r.header["x-host"] != "h2.test" {
		t.Fatalf("GET: %s %v", r.status, r.header)
	}
	p.headers(3, false, ":method", "POST", ":scheme", "http", ":authority", "h2.test", ":path", "/post", "content-length", "9")
	for i, part := range []string{"abc", "def", "ghi"} {
		if err := p.fr.WriteData(3, i == 2, []byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if r := p.response(3); r.status != "200" || string(r.body) != "abcdefghi" || r.header["x-content-length"] != "9" {
		t.Fatalf("POST: %s %q %v", r.status, r.body, r.header)
	}
	// HEAD: no content.
	p.headers(5, true, ":method", "HEAD", ":scheme", "http", ":authority", "h2.test", ":path", "/head")
	if r := p.response(5); r.status != "200" || len(r.body) != 0 {
		t.Fatalf("HEAD: %s %d bytes", r.status, len(r.body))
	}
	// Request trailers reach the handler; response trailers come back.
	p.headers(7, false, ":method", "POST", ":scheme", "http", ":authority", "h2.test", ":path", "/t", "trailer", "x-sum")
	p.fr.WriteData(7, false, []byte("hello"))
	p.headers(7, true, "x-sum", "42")
	if r := p.response(7); string(r.body) != "hello" || r.trailer["x-echo-trailer"] != "42" {
		t.Fatalf("trailers: body %q trailer %v", r.body, r.trailer)
	}
	// The HPACK dynamic table carries over between requests (the encoder
	// indexes repeated fields): many requests on one connection.
	for id := uint32(9); id < 9+2*20; id += 2 {
		p.headers(id, true, confGet("/again", "x-custom", "same value each time")...)
		if r := p.response(id); r.status != "200" {
			t.Fatalf("request on stream %d: %s", id, r.status)
		}
	}
}

func TestH2ConformControlFrames(t *testing.T) {
	addr := confStartH2C(t, HandlerFunc(echo), Options{})
	p := confDial(t, addr)
	// Our SETTINGS are acknowledged; a PING is answered with its data.
	ping := [8]byte{'p', 'i', 'n', 'g', 'a', 'p', '-', '1'}
	if err := p.fr.WritePing(false, ping); err != nil {
		t.Fatal(err)
	}
	var acked, ponged bool
	for !acked || !ponged {
		switch f := p.read().(type) {
		case *http2.SettingsFrame:
			acked = acked || f.IsAck()
		case *http2.PingFrame:
			if f.IsAck() {
				if f.Data != ping {
					t.Fatalf("PING ack data %q", f.Data[:])
				}
				ponged = true
			}
		}
	}
	// Unknown frame types are ignored, on the connection and on a stream
	// (RFC 9113 §4.1); the connection keeps working.
	p.fr.WriteRawFrame(0xfa, 0, 0, []byte("ignored"))
	p.headers(1, false, confGet("/u")...)
	p.fr.WriteRawFrame(0xfb, 0, 1, []byte("ignored too"))
	p.fr.WriteData(1, true, nil)
	if r := p.response(1); r.status != "200" {
		t.Fatalf("after unknown frames: %s", r.status)
	}
	// PRIORITY frames are accepted and ignored.
	p.fr.WritePriority(3, http2.PriorityParam{StreamDep: 0, Weight: 10})
	p.headers(5, true, confGet("/p")...)
	if r := p.response(5); r.status != "200" {
		t.Fatalf("after PRIORITY: %s", r.status)
	}
}

func TestH2ConformErrors(t *testing.T) {
	addr := confStartH2C(t, HandlerFunc(echo), Options{})
	tests := []struct {
		name     string
		send     func(p *confPeer)
		stream   uint32
		code     http2.ErrCode
		streamOK bool // a stream error is allowed (else it must be the connection's)
	}{
		{"uppercase header name", func(p *confPeer) { p.headers(1, true, confGet("/", "X-Upper", "v")...) }, 1, http2.ErrCodeProtocol, true},
		{"connection-specific header", func(p *confPeer) { p.headers(1, true, confGet("/", "connection", "keep-alive")...) }, 1, http2.ErrCodeProtocol, true},
		{"te other than trailers", func(p *confPeer) { p.headers(1, true, confGet("/", "te", "gzip")...) }, 1, http2.ErrCodeProtocol, true},
		{"missing :path", func(p *confPeer) {
			p.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "h2.test")
		}, 1, http2.ErrCodeProtocol, true},
		{"pseudo-header after a regular one", func(p *confPeer) {
			p.headers(1, true, ":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/", ":authority", "h2.test")
		}, 1, http2.ErrCodeProtocol, true},
		{"unknown pseudo-header", func(p *confPeer) { p.headers(1, true, confGet("/", ":foo", "bar")...) }, 1, http2.ErrCodeProtocol, true},
		{"content-length larger than the body", func(p *confPeer) {
			p.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "h2.test", ":path", "/", "content-length", "10")
			p.fr.WriteData(1, true, []byte("abc"))
		}, 1, http2.ErrCodeProtocol, true},
		{"content-length smaller than the body", func(p *confPeer) {
			p.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "h2.test", ":path", "/", "content-length", "2")
			p.fr.WriteData(1, true, []byte("abcdef"))
		}, 1, http2.ErrCodeProtocol, true},
		{"DATA on stream 0", func(p *confPeer) { p.fr.WriteRawFrame(http2.FrameData, 0, 0, []byte("x")) }, 0, http2.ErrCodeProtocol, false},
		{"HEADERS on an even stream", func(p *confPeer) { p.headers(2, true, confGet("/")...) }, 2, http2.ErrCodeProtocol, false},
		{"stream ids going down", func(p *confPeer) {
			p.headers(5, true, confGet("/")...)
			p.headers(3, true, confGet("/")...)
		}, 3, http2.ErrCodeProtocol, false},
		{"zero WINDOW_UPDATE on the connection", func(p *confPeer) {
			p.fr.WriteRawFrame(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 0, 0})
		}, 0, http2.ErrCodeProtocol, false},
		{"connection window overflow", func(p *confPeer) { p.fr.WriteWindowUpdate(0, 1<<31-1) }, 0, http2.ErrCodeFlowControl, false},
		{"initial window size too large", func(p *confPeer) {
			var b [6]byte
			binary.BigEndian.PutUint16(b[:2], uint16(http2.SettingInitialWindowSize))
			binary.BigEndian.PutUint32(b[2:], 1<<31)
			p.fr.WriteRawFrame(http2.FrameSettings, 0, 0, b[:])
		}, 0, http2.ErrCodeFlowControl, false},
		{"max frame size too small", func(p *confPeer) {
			var b [6]byte
			binary.BigEndian.PutUint16(b[:2], uint16(http2.SettingMaxFrameSize))
			binary.BigEndian.PutUint32(b[2:], 1000)
			p.fr.WriteRawFrame(http2.FrameSettings, 0, 0, b[:])
		}, 0, http2.ErrCodeProtocol, false},
		{"SETTINGS length not a multiple of 6", func(p *confPeer) {
			p.fr.WriteRawFrame(http2.FrameSettings, 0, 0, []byte{0, 1, 0, 0, 0})
		}, 0, http2.ErrCodeFrameSize, false},
		{"PING of 7 bytes", func(p *confPeer) { p.fr.WriteRawFrame(http2.FramePing, 0, 0, make([]byte, 7)) }, 0, http2.ErrCodeFrameSize, false},
		{"HEADERS without END_HEADERS then another frame", func(p *confPeer) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block(confGet("/")...), EndStream: true})
			p.fr.WritePing(false, [8]byte{})
		}, 0, http2.ErrCodeProtocol, false},
		{"DATA after END_STREAM", func(p *confPeer) {
			p.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "h2.test", ":path", "/slow-read")
			p.fr.WriteData(1, true, []byte("a"))
			p.fr.WriteData(1, false, []byte("b"))
		}, 1, http2.ErrCodeStreamClosed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := confDial(t, addr)
			tt.send(p)
			p.expectError(tt.stream, tt.code, tt.streamOK)
		})
	}
	// The server survived all of it.
	p := confDial(t, addr)
	p.headers(1, true, confGet("/still")...)
	if r := p.response(1); r.status != "200" {
		t.Fatalf("after the errors: %s", r.status)
	}
}

// TestH2ConformFlowControl: the server never sends more DATA than the
// client's stream window allows, and resumes on WINDOW_UPDATE.
func TestH2ConformFlowControl(t *testing.T) {
	const size = 5000
	big := bytes.Repeat([]byte("0123456789"), size/10)
	addr := confStartH2C(t, HandlerFunc(func(c *httpx.Ctx) {
		var h httpx.Header
		h.Add("Content-Type", "text/plain")
		c.W.WriteHeader(200, &h, size)
		c.W.Write(big)
		c.W.Finish(nil)
	}), Options{})
	p := confDial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	p.headers(1, true, confGet("/big")...)
	got := 0
	for got < 1000 {
		switch f := p.read().(type) {
		case *http2.DataFrame:
			got += len(f.Data())
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("unexpected %v", f)
		}
	}
	if got != 1000 {
		t.Fatalf("%d bytes sent into a 1000-byte window", got)
	}
	// Nothing more until the window opens.
	for {
		f, err := p.next(300 * time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok && len(d.Data()) > 0 {
			t.Fatalf("%d more bytes beyond the window", len(d.Data()))
		}
	}
	// The framer's reader is fine after a timeout only on a fresh read:
	// open the window and read the rest.
	p.fr.WriteWindowUpdate(1, size)
	for got < size {
		switch f := p.read().(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if f.StreamEnded() && got != size {
				t.Fatalf("ended at %d bytes, want %d", got, size)
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("unexpected %v", f)
		}
	}
}

// TestH2ConformResetCancelsHandler: RST_STREAM from the client cancels the
// handler's context; the connection keeps serving.
func TestH2ConformResetCancelsHandler(t *testing.T) {
	entered, cancelled := make(chan struct{}), make(chan struct{})
	addr := confStartH2C(t, HandlerFunc(func(c *httpx.Ctx) {
		if c.Req.Path == "/wait" {
			close(entered)
			select {
			case <-c.Context.Done():
				close(cancelled)
			case <-time.After(10 * time.Second):
			}
			return
		}
		echo(c)
	}), Options{})
	p := confDial(t, addr)
	p.headers(1, true, confGet("/wait")...)
	<-entered
	p.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled by RST_STREAM")
	}
	p.headers(3, true, confGet("/next")...)
	if r := p.response(3); r.status != "200" {
		t.Fatalf("after a reset: %s", r.status)
	}
}

// TestH2ConformConcurrentStreamLimit: streams beyond the advertised
// SETTINGS_MAX_CONCURRENT_STREAMS are refused (REFUSED_STREAM or
// PROTOCOL_ERROR, RFC 9113 §5.1.2), and the others complete.
func TestH2ConformConcurrentStreamLimit(t *testing.T) {
	release := make(chan struct{})
	var running atomic.Int32
	addr := confStartH2C(t, HandlerFunc(func(c *httpx.Ctx) {
		running.Add(1)
		<-release
		echo(c)
	}), Options{})
	p := confDial(t, addr)
	limit, ok := p.settings[http2.SettingMaxConcurrentStreams]
	if !ok || limit == 0 || limit > 1000 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (set %v): want a bound", limit, ok)
	}
	for i := uint32(0); i <= limit; i++ {
		p.headers(1+2*i, true, confGet("/hold")...)
	}
	extra := 1 + 2*limit
	deadline := time.Now().Add(5 * time.Second)
	refused := false
	for !refused && time.Now().Before(deadline) {
		f, err := p.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the refusal: %v", err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID != extra || (f.ErrCode != http2.ErrCodeRefusedStream && f.ErrCode != http2.ErrCodeProtocol) {
				t.Fatalf("RST_STREAM %v on stream %d (the extra one is %d)", f.ErrCode, f.StreamID, extra)
			}
			refused = true
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v instead of refusing one stream", f.ErrCode)
		}
	}
	if !refused {
		t.Fatal("stream beyond the limit not refused")
	}
	close(release)
	// The held streams complete, in whatever order.
	ended := map[uint32]bool{}
	for len(ended) < int(limit) {
		switch f := p.read().(type) {
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				t.Fatalf("stream %d: %s", f.StreamID, st)
			}
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		}
	}
	if int(running.Load()) != int(limit) {
		t.Fatalf("%d handlers ran, want %d (the refused stream must not reach the handler)", running.Load(), limit)
	}
}

// TestH2ConformContinuationFlood: a header block that never ends is cut
// off at the header size limit, not buffered without bound.
func TestH2ConformContinuationFlood(t *testing.T) {
	addr := confStartH2C(t, HandlerFunc(echo), Options{MaxHeaderBytes: 16 << 10})
	p := confDial(t, addr)
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block(confGet("/")...)})
	// Literal fields of 1 KB each, never indexed, in CONTINUATION frames.
	var frag bytes.Buffer
	enc := hpack.NewEncoder(&frag)
	enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("v", 1024), Sensitive: true})
	chunk := bytes.Repeat(frag.Bytes(), 8)
	go func() { // up to 64 MB; stops when the server closes
		for i := 0; i < 8192; i++ {
			if p.fr.WriteContinuation(1, false, chunk) != nil {
				return
			}
		}
	}()
	// The server answers with a GOAWAY, a stream refusal or a 431, or
	// closes; it never waits for the end of the block.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := p.next(time.Until(deadline))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("no reaction within 10s to a header block growing without end")
		}
		if err != nil {
			return // closed (a GOAWAY may have been lost in the reset)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			if f.ErrCode == http2.ErrCodeNo {
				t.Fatal("GOAWAY NO_ERROR for a header flood")
			}
			return
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				if st := f.PseudoValue("status"); st != "431" {
					t.Fatalf("status %s for a header flood", st)
				}
				return
			}
		}
	}
}

// TestH2ShortBodyAfterCompleteResponse: a client answered early (a 401
// before its upload is done, here while the handler still reads the body,
// as the proxy does in full duplex) may end its stream short of its
// content-length, as curl does. Both sides have ended the stream then:
// no RST_STREAM may follow (RFC 9113 §5.1; a PROTOCOL_ERROR there made
// curl report an error after a complete answer), while the handler's read
// still fails (the body is malformed, it must not look complete). Before
// the response is complete the same short end is a PROTOCOL_ERROR reset
// (TestH2ConformErrors).
func TestH2ShortBodyAfterCompleteResponse(t *testing.T) {
	readErr := make(chan error, 1)
	h := HandlerFunc(func(c *httpx.Ctx) {
		var hdr httpx.Header
		hdr.Add("Content-Type", "text/plain")
		c.W.WriteHeader(401, &hdr, 4)
		c.W.Write([]byte("auth"))
		c.W.Finish(nil)
		_, err := io.ReadAll(c.Req.Body)
		readErr <- err
	})
	addr := confStartH2C(t, h, Options{})
	p := confDial(t, addr)
	p.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "h2.test", ":path", "/upload", "content-length", "10")
	if err := p.fr.WriteData(1, false, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if r := p.response(1); r.status != "401" || string(r.body) != "auth" {
		t.Fatalf("response %q %q, want 401 auth", r.status, r.body)
	}
	// The short end, then a PING: whatever the server answers to the end
	// comes before the PING's ACK.
	if err := p.fr.WriteData(1, true, nil); err != nil {
		t.Fatal(err)
	}
	p.fr.WritePing(false, [8]byte{7})
	for {
		switch f := p.read().(type) {
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %v on stream %d after a complete response", f.ErrCode, f.StreamID)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.PingFrame:
			if !f.IsAck() {
				continue
			}
			select {
			case err := <-readErr:
				if !errors.Is(err, errH2ContentLength) {
					t.Fatalf("the handler's body read: %v, want the content-length error", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the handler's body read never ended")
			}
			// The connection goes on.
			p.headers(3, true, confGet("/next")...)
			if r := p.response(3); r.status != "401" {
				t.Fatalf("next request: %q", r.status)
			}
			return
		}
	}
}
