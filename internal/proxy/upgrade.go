package proxy

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// relayUpgrade finishes a protocol switch (WebSocket): it takes the client
// connection over, sends it the upstream's 101 answer, then copies bytes both
// ways until either side closes. The HTTP read and idle timeouts no longer
// apply: an idle WebSocket stays open.
func (p *Proxy) relayUpgrade(c *httpx.Ctx, up io.ReadWriteCloser) {
	defer up.Close()
	conn, br, err := c.W.Hijack()
	if err != nil {
		c.Error(502, "upgrade not supported on this connection")
		return
	}
	c.Hijacked = true
	defer conn.Close()
	conn.SetDeadline(time.Time{})

	bw := bufio.NewWriterSize(conn, 1024)
	bw.WriteString("HTTP/1.1 101 ")
	bw.WriteString(statusText(c.Resp.Status))
	bw.WriteString("\r\n")
	for _, f := range c.Resp.Header.Fields() {
		bw.WriteString(f.Name)
		bw.WriteString(": ")
		bw.WriteString(f.Value)
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return
	}

	var wg sync.WaitGroup
	wg.Add(1)
	var in int64
	go func() {
		defer wg.Done()
		// Client -> upstream, starting with bytes already buffered.
		n, _ := io.Copy(up, br)
		in = n
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			up.Close()
		}
	}()
	out, _ := io.Copy(conn, up)
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	} else {
		conn.Close()
	}
	// The client may keep its side open; once the upstream is done, end it.
	conn.SetReadDeadline(time.Now().Add(time.Second))
	wg.Wait()
	c.BytesIn += in
	c.BytesOut += out
}

func statusText(code int) string {
	if code == 101 {
		return "Switching Protocols"
	}
	return strconv.Itoa(code)
}
