package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Handler serves the native-engine tests: echo, plus paths that
// exercise streaming, waiting and large bodies.
func h2Handler(hooks *h2Hooks) Handler {
	return HandlerFunc(func(c *httpx.Ctx) {
		switch {
		case c.Req.Path == "/big":
			// 1 MB: far past the default windows.
			body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			c.W.WriteHeader(200, nil, int64(len(body)))
			for p := body; len(p) > 0; p = p[min(len(p), 10000):] {
				if _, err := c.W.Write(p[:min(len(p), 10000)]); err != nil {
					return
				}
			}
			c.W.Finish(nil)
		case c.Req.Path == "/count":
			n, err := io.Copy(io.Discard, c.Req.Body)
			var h httpx.Header
			msg := fmt.Sprint(n)
			if err != nil {
				msg = err.Error()
			}
			c.W.WriteHeader(200, &h, int64(len(msg)))
			c.W.Write([]byte(msg))
			c.W.Finish(nil)
		case c.Req.Path == "/nocontent":
			c.W.WriteHeader(204, nil, -1)
			c.W.Finish(nil)
		case c.Req.Path == "/early":
			// Answers without reading the body.
			c.W.WriteHeader(200, nil, 2)
			c.W.Write([]byte("ok"))
			c.W.Finish(nil)
		case c.Req.Path == "/stream":
			c.W.WriteHeader(200, nil, -1)
			for i := range 3 {
				fmt.Fprintf(c.W, "chunk%d;", i)
				c.W.Flush()
			}
			var tr httpx.Header
			tr.Add("Grpc-Status", "0")
			c.W.Finish(&tr)
		case c.Req.Path == "/info":
			var h httpx.Header
			h.Add("Link", "</a.css>; rel=preload")
			c.W.WriteInformational(103, &h)
			echo(c)
		case c.Req.Path == "/hang":
			<-c.Context.Done()
		case strings.HasPrefix(c.Req.Path, "/wait"):
			if hooks != nil && hooks.entered != nil {
				hooks.entered <- c.Req.Path
			}
			select {
			case <-c.Context.Done():
				if hooks != nil && hooks.cancelled != nil {
					hooks.cancelled <- c.Req.Path
				}
				return
			case <-hooksRelease(hooks):
			}
			echo(c)
		default:
			echo(c)
		}
	})
}

type h2Hooks struct {
	entered   chan string
	cancelled chan string
	release   chan struct{}
}

func hooksRelease(h *h2Hooks) <-chan struct{} {
	if h == nil || h.release == nil {
		return nil
	}
	return h.release
}

// h2cTransport is x/net's client speaking h2c with prior knowledge.
func h2cTransport() *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// TestH2NativeTransport runs requests through x/net's HTTP/2 client over
// h2c and TLS.
func TestH2NativeTransport(t *testing.T) {
	h2cAddr, _ := startServer(t, h2Handler(nil), Options{H2C: true, Name: "plain"})
	tlsAddr, pool := startTLS(t, h2Handler(nil), "h2")
	for _, mode := range []string{"h2c", "tls"} {
		var tr *http2.Transport
		base := ""
		if mode == "h2c" {
			tr = h2cTransport()
			base = "http://" + h2cAddr
		} else {
			tr = &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			base = "https://" + tlsAddr
		}
		client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		bigUpload := strings.Repeat("u", 3<<20)
		for _, tc := range []struct {
			name, method, path, body string
			wantStatus               int
			wantBody                 string
			check                    func(t *testing.T, resp *http.Response, body []byte)
		}{
			{name: "get", method: "GET", path: "/a/./b?q=1", wantStatus: 200, check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("X-Path") != "/a/b" || resp.Header.Get("X-Query") != "q=1" || resp.Header.Get("X-Proto") != "HTTP/2.0" ||
					resp.Header.Get("X-Client-Ip") != "127.0.0.1" || resp.Header.Get("Date") == "" || resp.ContentLength != 0 {
					t.Errorf("header %v cl %d", resp.Header, resp.ContentLength)
				}
				if mode == "tls" && resp.Header.Get("X-Scheme") != "https" || mode == "h2c" && resp.Header.Get("X-Server") != "plain" {
					t.Errorf("scheme %q server %q", resp.Header.Get("X-Scheme"), resp.Header.Get("X-Server"))
				}
			}},
			{name: "post", method: "POST", path: "/p", body: "hello", wantStatus: 200, wantBody: "hello", check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("X-Content-Length") != "5" {
					t.Errorf("content length seen %q", resp.Header.Get("X-Content-Length"))
				}
			}},
			{name: "head", method: "HEAD", path: "/h", wantStatus: 200},
			{name: "big response", method: "GET", path: "/big", wantStatus: 200, check: func(t *testing.T, _ *http.Response, body []byte) {
				if len(body) != 1<<20 {
					t.Errorf("body %d bytes", len(body))
				}
			}},
			{name: "big upload", method: "POST", path: "/count", body: bigUpload, wantStatus: 200, wantBody: fmt.Sprint(len(bigUpload))},
			{name: "early answer", method: "POST", path: "/early", body: bigUpload, wantStatus: 200, wantBody: "ok"},
			{name: "no content", method: "GET", path: "/nocontent", wantStatus: 204},
			{name: "streamed with trailers", method: "GET", path: "/stream", wantStatus: 200, wantBody: "chunk0;chunk1;chunk2;", check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Trailer.Get("Grpc-Status") != "0" {
					t.Errorf("trailer %v", resp.Trailer)
				}
			}},
			{name: "early hints", method: "GET", path: "/info", wantStatus: 200},
			{name: "encoded dot segments", method: "GET", path: "/a/%2e%2e/b", wantStatus: 200, check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("X-Path") != "/b" {
					t.Errorf("path %q", resp.Header.Get("X-Path"))
				}
			}},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				req, _ := http.NewRequest(tc.method, base+tc.path, body)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tc.wantStatus || tc.wantBody != "" && string(b) != tc.wantBody {
					t.Fatalf("status %d body %.100q", resp.StatusCode, b)
				}
				if tc.check != nil {
					tc.check(t, resp, b)
				}
			})
		}
		tr.CloseIdleConnections()
	}
}

// TestH2NativeConcurrentStreams: a stream whose handler waits does not
// hold up other streams on the same connection.
func TestH2NativeConcurrentStreams(t *testing.T) {
	hooks := &h2Hooks{entered: make(chan string, 1), release: make(chan struct{})}
	addr, _ := startServer(t, h2Handler(hooks), Options{H2C: true})
	tr := h2cTransport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	slow := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/wait")
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	<-hooks.entered
	for i := range 20 {
		resp, err := client.Get(fmt.Sprintf("http://%s/fast/%d", addr, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("fast %d: %d", i, resp.StatusCode)
		}
	}
	close(hooks.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// h2raw is a raw-frame HTTP/2 client for protocol-edge tests.
type h2raw struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	ebuf bytes.Buffer
	enc  *hpack.Encoder
	dec  *hpack.Decoder
}

func dialH2(t *testing.T, addr string, settings ...http2.Setting) *h2raw {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &h2raw{t: t, conn: conn}
	c.fr = http2.NewFramer(conn, conn)
	c.enc = hpack.NewEncoder(&c.ebuf)
	c.dec = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(conn, h2Preface); err != nil {
		t.Fatal(err)
	}
	c.fr.WriteSettings(settings...)
	// The server's SETTINGS come first.
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("first frame %v", f)
	}
	c.fr.WriteSettingsAck()
	return c
}

// block HPACK-encodes fields given as name, value pairs.
func (c *h2raw) block(kv ...string) []byte {
	c.ebuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), c.ebuf.Bytes()...)
}

func (c *h2raw) get(id uint32, path string, end bool, extra ...string) {
	c.t.Helper()
	kv := append([]string{":method", "GET", ":scheme", "http", ":authority", "h", ":path", path}, extra...)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(kv...), EndStream: end, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// h2resp is what the raw client saw on one stream.
type h2resp struct {
	status  string
	fields  map[string]string
	body    []byte
	rst     http2.ErrCode
	gotRST  bool
	ended   bool
	headers int
}

// until reads frames until pred is true, collecting per-stream results;
// a GOAWAY is returned as goaway (nil when none came).
func (c *h2raw) until(pred func(rs map[uint32]*h2resp, ga *http2.GoAwayFrame) bool) (map[uint32]*h2resp, *http2.GoAwayFrame, error) {
	rs := map[uint32]*h2resp{}
	var ga *http2.GoAwayFrame
	get := func(id uint32) *h2resp {
		if rs[id] == nil {
			rs[id] = &h2resp{fields: map[string]string{}}
		}
		return rs[id]
	}
	for !pred(rs, ga) {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return rs, ga, err
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			r := get(f.StreamID)
			r.headers++
			fields, err := c.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return rs, ga, err
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					if r.status == "" || strings.HasPrefix(r.status, "1") {
						r.status = hf.Value
					}
				}
				r.fields[hf.Name] = hf.Value
			}
			r.ended = r.ended || f.StreamEnded()
		case *http2.DataFrame:
			r := get(f.StreamID)
			r.body = append(r.body, f.Data()...)
			r.ended = r.ended || f.StreamEnded()
			if len(f.Data()) > 0 {
				c.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				c.fr.WriteWindowUpdate(f.StreamID, uint32(len(f.Data())))
			}
		case *http2.RSTStreamFrame:
			r := get(f.StreamID)
			r.gotRST, r.rst = true, f.ErrCode
		case *http2.GoAwayFrame:
			ga = f
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		}
	}
	return rs, ga, nil
}

func streamDone(id uint32) func(map[uint32]*h2resp, *http2.GoAwayFrame) bool {
	return func(rs map[uint32]*h2resp, ga *http2.GoAwayFrame) bool {
		r := rs[id]
		return ga != nil || r != nil && (r.ended || r.gotRST)
	}
}

func gotGoAway(_ map[uint32]*h2resp, ga *http2.GoAwayFrame) bool { return ga != nil }

// TestH2NativeFrames covers protocol edges with raw frames.
func TestH2NativeFrames(t *testing.T) {
	hooks := &h2Hooks{entered: make(chan string, 300), cancelled: make(chan string, 300), release: make(chan struct{})}
	defer close(hooks.release)
	addr, _ := startServer(t, h2Handler(hooks), Options{H2C: true, MaxHeaderBytes: 4096})

	t.Run("ping and settings acked", func(t *testing.T) {
		c := dialH2(t, addr)
		c.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := f.(*http2.PingFrame); ok {
				if !p.IsAck() || p.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
					t.Fatalf("ping %v", p)
				}
				return
			}
		}
	})
	t.Run("unknown frames and priority ignored", func(t *testing.T) {
		c := dialH2(t, addr)
		c.fr.WriteRawFrame(0x42, 0, 0, []byte("whatever"))
		c.fr.WriteRawFrame(0x42, 0, 3, []byte("x"))
		c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 10})
		c.get(1, "/ok", true)
		rs, _, err := c.until(streamDone(1))
		if err != nil || rs[1].status != "200" {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
	})
	t.Run("head has no body", func(t *testing.T) {
		c := dialH2(t, addr)
		kv := []string{":method", "HEAD", ":scheme", "http", ":authority", "h", ":path", "/"}
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(kv...), EndStream: true, EndHeaders: true})
		rs, _, err := c.until(streamDone(1))
		if err != nil || rs[1].status != "200" || len(rs[1].body) != 0 || rs[1].fields["content-length"] != "0" || rs[1].headers != 1 {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
	})
	t.Run("garbage after preface", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		// The preface followed by garbage instead of SETTINGS: GOAWAY
		// with an error, then the connection closes.
		io.WriteString(conn, h2Preface+"GARBAGEGARBAGE")
		b, _ := io.ReadAll(conn)
		fr := http2.NewFramer(nil, bytes.NewReader(b))
		var ga *http2.GoAwayFrame
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				ga = g
			}
		}
		if ga == nil || ga.ErrCode == http2.ErrCodeNo {
			t.Fatalf("no error GOAWAY in %q", b)
		}
	})
	t.Run("headers after end stream", func(t *testing.T) {
		c := dialH2(t, addr)
		c.get(1, "/wait/1", true)
		<-hooks.entered
		c.get(1, "/again", true)
		rs, _, err := c.until(streamDone(1))
		if err != nil || !rs[1].gotRST || rs[1].rst != http2.ErrCodeStreamClosed {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
		if p := <-hooks.cancelled; p != "/wait/1" {
			t.Fatalf("cancelled %q", p)
		}
	})
	t.Run("client reset cancels the handler", func(t *testing.T) {
		c := dialH2(t, addr)
		c.get(1, "/wait/2", true)
		<-hooks.entered
		c.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		select {
		case p := <-hooks.cancelled:
			if p != "/wait/2" {
				t.Fatalf("cancelled %q", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("handler context not cancelled")
		}
		// The connection goes on.
		c.get(3, "/ok", true)
		if rs, _, err := c.until(streamDone(3)); err != nil || rs[3].status != "200" {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("connection window overflow", func(t *testing.T) {
		c := dialH2(t, addr)
		c.fr.WriteWindowUpdate(0, 1<<31-1)
		_, ga, err := c.until(gotGoAway)
		if err != nil || ga.ErrCode != http2.ErrCodeFlowControl {
			t.Fatalf("err %v goaway %v", err, ga)
		}
	})
	t.Run("stream window overflow", func(t *testing.T) {
		c := dialH2(t, addr)
		c.get(1, "/wait/3", true)
		<-hooks.entered
		c.fr.WriteWindowUpdate(1, 1<<31-1)
		rs, _, err := c.until(streamDone(1))
		if err != nil || !rs[1].gotRST || rs[1].rst != http2.ErrCodeFlowControl {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
		<-hooks.cancelled
	})
	t.Run("data on idle stream", func(t *testing.T) {
		c := dialH2(t, addr)
		c.fr.WriteData(5, true, []byte("x"))
		_, ga, err := c.until(gotGoAway)
		if err != nil || ga.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("err %v goaway %v", err, ga)
		}
	})
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"upper-case name", []string{"X-Upper", "1"}},
		{"connection header", []string{"connection", "keep-alive"}},
		{"te not trailers", []string{"te", "gzip"}},
		{"value with leading space", []string{"x-a", " v"}},
		{"pseudo after regular", []string{"x-a", "1", ":method", "GET"}},
	} {
		t.Run("malformed: "+tc.name, func(t *testing.T) {
			c := dialH2(t, addr)
			c.get(1, "/", true, tc.extra...)
			rs, _, err := c.until(streamDone(1))
			if err != nil || !rs[1].gotRST || rs[1].rst != http2.ErrCodeProtocol {
				t.Fatalf("err %v resp %+v", err, rs[1])
			}
			// The connection survives a stream error.
			c.get(3, "/ok", true)
			if rs, _, err := c.until(streamDone(3)); err != nil || rs[3].status != "200" {
				t.Fatalf("after: err %v", err)
			}
		})
	}
	t.Run("content-length mismatch", func(t *testing.T) {
		c := dialH2(t, addr)
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "h", ":path", "/count", "content-length", "5"}
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(kv...), EndHeaders: true})
		c.fr.WriteData(1, true, []byte("abc"))
		rs, _, err := c.until(streamDone(1))
		if err != nil || !rs[1].gotRST || rs[1].rst != http2.ErrCodeProtocol {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
	})
	t.Run("oversized headers get 431", func(t *testing.T) {
		c := dialH2(t, addr)
		c.get(1, "/", true, "x-big", strings.Repeat("b", 3000), "x-big2", strings.Repeat("c", 3000))
		rs, _, err := c.until(streamDone(1))
		if err != nil || rs[1].status != "431" || !bytes.HasPrefix(rs[1].body, []byte(`{"error":`)) {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
	})
	t.Run("continuation flood", func(t *testing.T) {
		c := dialH2(t, addr)
		blk := c.block(":method", "GET", ":scheme", "http", ":authority", "h", ":path", "/")
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: false})
		frag := c.block("x-a", strings.Repeat("a", 1000))
		var seen atomic.Bool
		var ga *http2.GoAwayFrame
		var rerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, ga, rerr = c.until(gotGoAway)
			seen.Store(true)
		}()
		for i := 0; i < 1000 && !seen.Load(); i++ {
			if c.fr.WriteContinuation(1, false, frag) != nil {
				break
			}
		}
		<-done
		if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("goaway %v err %v", ga, rerr)
		}
	})
	t.Run("rapid reset", func(t *testing.T) {
		c := dialH2(t, addr)
		var ga *http2.GoAwayFrame
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, ga, _ = c.until(gotGoAway)
		}()
		for id := uint32(1); id < 2*(h2ResetBurst+h2MaxConcurrentStreams)+100; id += 2 {
			c.get(id, "/hang", true)
			if c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				break
			}
		}
		<-done
		if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("goaway %v", ga)
		}
	})
	t.Run("small client window", func(t *testing.T) {
		c := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
		c.get(1, "/big", true)
		// until returns window to the server as data arrives.
		rs, _, err := c.until(streamDone(1))
		if err != nil || len(rs[1].body) != 1<<20 {
			t.Fatalf("err %v body %d", err, len(rs[1].body))
		}
	})
	t.Run("expect continue", func(t *testing.T) {
		c := dialH2(t, addr)
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "h", ":path", "/count", "expect", "100-continue"}
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(kv...), EndHeaders: true})
		rs, _, err := c.until(func(rs map[uint32]*h2resp, _ *http2.GoAwayFrame) bool { return rs[1] != nil && rs[1].status == "100" })
		if err != nil {
			t.Fatal(err)
		}
		c.fr.WriteData(1, true, []byte("abcd"))
		rs, _, err = c.until(streamDone(1))
		if err != nil || rs[1].status != "200" || string(rs[1].body) != "4" {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
	})
	t.Run("frames after an early answer are ignored", func(t *testing.T) {
		c := dialH2(t, addr)
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "h", ":path", "/early"}
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(kv...), EndHeaders: true})
		rs, _, err := c.until(func(rs map[uint32]*h2resp, _ *http2.GoAwayFrame) bool { return rs[1] != nil && rs[1].gotRST })
		if err != nil || !rs[1].ended || rs[1].rst != http2.ErrCodeNo || string(rs[1].body) != "ok" {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
		// Still in flight from the client's side: DATA and trailers.
		c.fr.WriteData(1, false, []byte("late"))
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("x-late", "1"), EndStream: true, EndHeaders: true})
		c.get(3, "/ok", true)
		rs, ga, err := c.until(streamDone(3))
		if err != nil || ga != nil || rs[3].status != "200" {
			t.Fatalf("err %v goaway %v resp %+v", err, ga, rs[3])
		}
	})
	t.Run("request trailers", func(t *testing.T) {
		c := dialH2(t, addr)
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "h", ":path", "/t"}
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(kv...), EndHeaders: true})
		c.fr.WriteData(1, false, []byte("xyz"))
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("x-sum", "7"), EndStream: true, EndHeaders: true})
		rs, _, err := c.until(streamDone(1))
		if err != nil || string(rs[1].body) != "xyz" || rs[1].fields["x-echo-trailer"] != "7" {
			t.Fatalf("err %v resp %+v", err, rs[1])
		}
	})
}

// TestH2NativeMaxConcurrentStreams: streams past the advertised limit are
// refused, and the connection goes on.
func TestH2NativeMaxConcurrentStreams(t *testing.T) {
	hooks := &h2Hooks{entered: make(chan string, h2MaxConcurrentStreams+10), release: make(chan struct{})}
	addr, _ := startServer(t, h2Handler(hooks), Options{H2C: true})
	c := dialH2(t, addr)
	for i := range h2MaxConcurrentStreams {
		c.get(uint32(2*i+1), "/wait/n", true)
	}
	for range h2MaxConcurrentStreams {
		<-hooks.entered
	}
	extra := uint32(2*h2MaxConcurrentStreams + 1)
	c.get(extra, "/wait/extra", true)
	rs, _, err := c.until(streamDone(extra))
	if err != nil || !rs[extra].gotRST || rs[extra].rst != http2.ErrCodeRefusedStream {
		t.Fatalf("err %v resp %+v", err, rs[extra])
	}
	close(hooks.release)
	rs, _, err = c.until(func(rs map[uint32]*h2resp, _ *http2.GoAwayFrame) bool {
		n := 0
		for _, r := range rs {
			if r.ended {
				n++
			}
		}
		return n == h2MaxConcurrentStreams
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestH2NativeIdleTimeout: an idle connection gets GOAWAY and is closed.
func TestH2NativeIdleTimeout(t *testing.T) {
	addr, _ := startServer(t, h2Handler(nil), Options{H2C: true, IdleTimeout: 100 * time.Millisecond})
	c := dialH2(t, addr)
	c.get(1, "/", true)
	_, ga, err := c.until(gotGoAway)
	if err != nil || ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("err %v goaway %v", err, ga)
	}
	if _, _, err := c.until(func(map[uint32]*h2resp, *http2.GoAwayFrame) bool { return false }); !errors.Is(err, io.EOF) {
		t.Fatalf("after GOAWAY: %v", err)
	}
}

// TestH2NativeShutdownWithStreams: Shutdown sends GOAWAY, lets the stream
// in flight finish, then the connection closes and Shutdown returns.
func TestH2NativeShutdownWithStreams(t *testing.T) {
	hooks := &h2Hooks{entered: make(chan string, 1), release: make(chan struct{})}
	addr, s := startServer(t, h2Handler(hooks), Options{H2C: true})
	c := dialH2(t, addr)
	c.get(1, "/wait/sd", true)
	<-hooks.entered
	sd := make(chan error, 1)
	go func() { sd <- s.Shutdown(context.Background()) }()
	_, ga, err := c.until(gotGoAway)
	if err != nil || ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("err %v goaway %v", err, ga)
	}
	select {
	case err := <-sd:
		t.Fatalf("Shutdown returned %v with a stream in flight", err)
	default:
	}
	close(hooks.release)
	rs, _, err := c.until(streamDone(1))
	if err != nil || rs[1].status != "200" {
		t.Fatalf("err %v resp %+v", err, rs[1])
	}
	c.conn.Close()
	select {
	case <-sd:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestH2NativeZeroWindowTimeout: a client that never opens its window
// cannot hold a handler past the send timeout: the stream is reset.
func TestH2NativeZeroWindowTimeout(t *testing.T) {
	addr, _ := startServer(t, h2Handler(nil), Options{H2C: true, sendTimeout: 200 * time.Millisecond})
	c := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	c.get(1, "/big", true)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("rst %v", rst)
			}
			return
		}
		if d, ok := f.(*http2.DataFrame); ok && len(d.Data()) > 0 {
			t.Fatalf("DATA beyond a zero window: %d bytes", len(d.Data()))
		}
	}
}

// TestH2NativePingFlood: a client that sends PINGs without reading the
// acks gets its connection closed once the queued acks pass the bound,
// instead of making the server buffer them without limit.
func TestH2NativePingFlood(t *testing.T) {
	addr, _ := startServer(t, h2Handler(nil), Options{H2C: true})
	c := dialH2(t, addr)
	var burst bytes.Buffer
	fr := http2.NewFramer(&burst, nil)
	for range 1000 {
		fr.WritePing(false, [8]byte{9})
	}
	c.conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for i := 0; ; i++ {
		if i == 2000 {
			t.Fatal("2M unread PING acks and the connection is still open")
		}
		if _, err := c.conn.Write(burst.Bytes()); err != nil {
			if isTimeout(err) {
				t.Fatalf("server stopped reading instead of closing: %v", err)
			}
			t.Logf("closed after %d000 PINGs", i)
			return
		}
	}
}

// TestH2NativeHeadTimeout: a header block left unfinished (HEADERS without
// END_HEADERS, then nothing) ends the connection after the read-header
// timeout, as does a client that never sends its SETTINGS.
func TestH2NativeHeadTimeout(t *testing.T) {
	addr, _ := startServer(t, h2Handler(nil), Options{H2C: true, ReadHeaderTimeout: 100 * time.Millisecond})
	t.Run("unfinished header block", func(t *testing.T) {
		c := dialH2(t, addr)
		blk := c.block(":method", "GET", ":scheme", "http", ":authority", "h", ":path", "/")
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: false})
		_, ga, err := c.until(gotGoAway)
		if err != nil || ga.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("err %v goaway %v", err, ga)
		}
	})
	t.Run("no settings", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, h2Preface)
		b, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(nil, bytes.NewReader(b))
		var ga *http2.GoAwayFrame
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				ga = g
			}
		}
		if ga == nil || ga.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("goaway %v in %q", ga, b)
		}
	})
}
