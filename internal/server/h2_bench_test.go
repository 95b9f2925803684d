package server

import (
	"bufio"
	"bytes"

	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2BenchClient is a lean raw-frame HTTP/2 client: its own allocations are
// the same whichever server it talks to (one frame struct per HEADERS).
type h2BenchClient struct {
	conn net.Conn
	bw   *bufio.Writer
	fr   *http2.Framer
	hb   bytes.Buffer
	enc  *hpack.Encoder
	dec  *hpack.Decoder
	id   uint32
}

func newH2BenchClient(b *testing.B, addr string) *h2BenchClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := &h2BenchClient{conn: conn, bw: bufio.NewWriterSize(conn, 16<<10), id: 1}
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(conn, 16<<10))
	c.fr.SetReuseFrames()
	c.enc = hpack.NewEncoder(&c.hb)
	c.dec = hpack.NewDecoder(4096, func(hpack.HeaderField) {})
	c.bw.WriteString(h2Preface)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	c.fr.WriteWindowUpdate(0, 1<<30)
	c.bw.Flush()
	return c
}

// round sends n GETs at once and reads the n responses.
func (c *h2BenchClient) round(b *testing.B, n int) {
	for range n {
		c.hb.Reset()
		for _, f := range [...]hpack.HeaderField{
			{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "bench.example"}, {Name: ":path", Value: "/api/v1/items/42?fields=a,b"},
			{Name: "user-agent", Value: "bench/1.0"}, {Name: "accept", Value: "*/*"}, {Name: "accept-encoding", Value: "gzip"},
		} {
			c.enc.WriteField(f)
		}
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: c.id, BlockFragment: c.hb.Bytes(), EndStream: true, EndHeaders: true})
		c.id += 2
	}
	if err := c.bw.Flush(); err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; {
		f, err := c.fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			if _, err := c.dec.Write(f.HeaderBlockFragment()); err != nil {
				b.Fatal(err)
			}
			if f.StreamEnded() {
				done++
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				done++
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
				c.bw.Flush()
			}
		case *http2.GoAwayFrame, *http2.RSTStreamFrame:
			b.Fatalf("unexpected %v", f)
		}
	}
}

// BenchmarkServeH2 measures the HTTP/2 server path over h2c with a real
// loopback client: "native" is our engine, "xnet" the x/net/http2 server
// with the net/http adapter it replaced (the "before"). seq sends one
// request at a time, m10 ten concurrent streams per op (like h2load -m10;
// allocs/op are per 10 requests there).
func BenchmarkServeH2(b *testing.B) {
	for _, eng := range []string{"native", "xnet"} {
		for _, depth := range []int{1, 10} {
			name := eng + "/seq"
			if depth > 1 {
				name = eng + "/m10"
			}
			b.Run(name, func(b *testing.B) {
				var addr string
				if eng == "native" {
					addr, _ = startServer(b, benchHandler(), Options{H2C: true})
				} else {
					addr = startXNetH2C(b)
				}
				c := newH2BenchClient(b, addr)
				c.round(b, depth) // warm the HPACK tables
				b.ReportAllocs()
				for b.Loop() {
					c.round(b, depth)
				}
			})
		}
	}
}

// startXNetH2C serves benchHandler through x/net's HTTP/2 server and the
// net/http adapter, the way the server did before the native engine.
func startXNetH2C(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	h := HTTPHandler(benchHandler(), "bench")
	srv := &http2.Server{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				srv.ServeConn(c, &http2.ServeConnOpts{Handler: h})
			}()
		}
	}()
	return ln.Addr().String()
}
