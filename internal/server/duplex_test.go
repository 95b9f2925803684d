package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// duplexHandler reads the request body on a goroutine of its own (after
// httpx.Body.Share, as the proxy's transports do) and writes each piece
// back as it comes, so the response streams while the body still flows.
// It returns once the reader is done, as a handler must.
func duplexHandler(c *httpx.Ctx) {
	c.Req.Body.(interface{ Share() }).Share()
	pieces := make(chan []byte)
	go func() {
		defer close(pieces)
		buf := make([]byte, 8<<10)
		for {
			n, err := c.Req.Body.Read(buf)
			if n > 0 {
				pieces <- bytes.Clone(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	// The answer starts with the first piece (a proxy's comes once the
	// upstream answered, after the body started).
	first, ok := <-pieces
	var h httpx.Header
	c.W.WriteHeader(200, &h, -1)
	if ok {
		c.W.Write(first)
	}
	for p := range pieces {
		c.W.Write(p)
		c.W.Flush()
	}
	c.W.Finish(nil)
}

// TestSharedBodyFullDuplex: over HTTP/1.1 the request body can be read on
// another goroutine while the response is written (the client sends each
// piece only after the echo of the one before came back). Under -race this
// also checks that the reader leaves the response's buffer alone (it used
// to flush it before every read) and that the 100 Continue it sends never
// interleaves with the response.
func TestSharedBodyFullDuplex(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(duplexHandler), Options{})
	for _, expect := range []bool{false, true} {
		t.Run(fmt.Sprintf("expect-continue=%v", expect), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			head := "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
			if expect {
				head += "Expect: 100-continue\r\n"
			}
			io.WriteString(c, head+"\r\n")
			br := bufio.NewReader(c)
			piece := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 4096) }
			send := func(i int) {
				fmt.Fprintf(c, "%x\r\n%s\r\n", 4096, piece(i))
			}
			if expect {
				l, _ := br.ReadString('\n')
				br.ReadString('\n')
				if l != "HTTP/1.1 100 Continue\r\n" {
					t.Fatalf("got %q, want the 100 Continue", l)
				}
			}
			send(0)
			req, _ := http.NewRequest("POST", "/echo", nil)
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			const pieces = 200
			got := make([]byte, 4096)
			for i := 0; i < pieces; i++ {
				if _, err := io.ReadFull(resp.Body, got); err != nil {
					t.Fatalf("echo of piece %d: %v", i, err)
				}
				if !bytes.Equal(got, piece(i)) {
					t.Fatalf("echo of piece %d differs", i)
				}
				if i+1 < pieces {
					send(i + 1)
				}
			}
			io.WriteString(c, "0\r\n\r\n")
			if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
				t.Fatalf("after the last piece: %d bytes, %v", len(rest), err)
			}
		})
	}
}

// TestSharedBodyKeepAlive: a shared body read to its declared length
// before the response starts leaves the connection reusable (the reader
// stops after Content-Length bytes and never sees the io.EOF).
func TestSharedBodyKeepAlive(t *testing.T) {
	h := HandlerFunc(func(c *httpx.Ctx) {
		c.Req.Body.(interface{ Share() }).Share()
		done := make(chan int)
		go func() {
			buf := make([]byte, c.Req.ContentLength)
			n, _ := io.ReadFull(c.Req.Body, buf) // stops at the length
			done <- n
		}()
		n := <-done
		var hdr httpx.Header
		msg := fmt.Sprint(n)
		c.W.WriteHeader(200, &hdr, int64(len(msg)))
		c.W.Write([]byte(msg))
		c.W.Finish(nil)
	})
	addr, _ := startServer(t, h, Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		req, _ := http.NewRequest("POST", "/", nil)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "5" || resp.Close {
			t.Fatalf("request %d: %q, close=%v: want 5 on a kept connection", i, b, resp.Close)
		}
	}
}
