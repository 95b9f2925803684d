package server

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Seeds builds frame sequences (after the preface) for FuzzServeH2.
func h2Seeds() [][]byte {
	var seeds [][]byte
	build := func(fn func(fr *http2.Framer, blk func(kv ...string) []byte)) {
		var out, hb bytes.Buffer
		fr := http2.NewFramer(&out, nil)
		enc := hpack.NewEncoder(&hb)
		blk := func(kv ...string) []byte {
			hb.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return append([]byte(nil), hb.Bytes()...)
		}
		fr.WriteSettings()
		fn(fr, blk)
		seeds = append(seeds, out.Bytes())
	}
	get := []string{":method", "GET", ":scheme", "http", ":authority", "h", ":path", "/x?y"}
	post := []string{":method", "POST", ":scheme", "http", ":authority", "h", ":path", "/p", "content-length", "3"}
	build(func(fr *http2.Framer, blk func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk(get...), EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, blk func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk(post...), EndHeaders: true})
		fr.WriteData(1, false, []byte("ab"))
		fr.WriteWindowUpdate(0, 100)
		fr.WriteData(1, false, []byte("c"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk("x-t", "1"), EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, blk func(...string) []byte) {
		b := blk(get...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:3], EndStream: true})
		fr.WriteContinuation(3, false, b[3:5])
		fr.WriteContinuation(3, true, b[5:])
		fr.WritePing(false, [8]byte{1})
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WritePriority(5, http2.PriorityParam{Weight: 3})
		fr.WriteRawFrame(0x33, 0, 0, []byte("?"))
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, blk func(...string) []byte) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk(append(get, "cookie", "a=1", "cookie", "b=2")...), EndStream: true, EndHeaders: true})
		fr.WriteWindowUpdate(1, 10)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk(get...), EndStream: true, EndHeaders: true})
	})
	return seeds
}

// FuzzServeH2 feeds arbitrary frames after the HTTP/2 preface to the whole
// connection loop (h2c prior knowledge, the echo handler): it must never
// panic or hang, and what it writes must parse as HTTP/2 frames.
func FuzzServeH2(f *testing.F) {
	for _, s := range h2Seeds() {
		f.Add(s)
	}
	s := New(HandlerFunc(echo), Options{Logger: quietLogger(), H2C: true, MaxHeaderBytes: 4096})
	f.Fuzz(func(t *testing.T, in []byte) {
		mc := &memConn{in: strings.NewReader(h2Preface + string(in))}
		c := s.newConn(mc)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("HTTP/2 connection loop hangs on %q", in)
		}
		fr := http2.NewFramer(nil, strings.NewReader(mc.output()))
		fr.SetMaxReadFrameSize(1 << 24)
		for {
			if _, err := fr.ReadFrame(); err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("server wrote a bad frame: %v", err)
				}
				break
			}
		}
	})
}
