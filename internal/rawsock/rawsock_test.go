//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package rawsock

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/testutil/race"
	"github.com/pingap-go/pingap/internal/testutil/testca"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestSendRead(t *testing.T) {
	tests := []struct {
		name string
		// peer handles what it received; it may answer.
		peer      func(peer *net.TCPConn, got []byte)
		deadline  time.Duration // the sender's read deadline (0: none)
		want      string        // what SendRead reads
		wantTO    bool          // ... or a timeout
		wantEOF   bool          // ... or EOF
		wantReset bool          // ... or a reset (a read error)
	}{
		{name: "reply", peer: func(p *net.TCPConn, got []byte) { p.Write(append([]byte("re:"), got...)) }, want: "re:ping"},
		{name: "deadline", peer: func(*net.TCPConn, []byte) {}, deadline: 50 * time.Millisecond, wantTO: true},
		{name: "peer closes", peer: func(p *net.TCPConn, _ []byte) { p.Close() }, wantEOF: true},
		{name: "peer resets", peer: func(p *net.TCPConn, _ []byte) { p.SetLinger(0); p.Close() }, wantReset: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pair(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 4)
				if _, err := io.ReadFull(b, buf); err != nil {
					return
				}
				tt.peer(b, buf)
			}()
			if tt.deadline > 0 {
				a.SetReadDeadline(time.Now().Add(tt.deadline))
			} else {
				a.SetReadDeadline(time.Now().Add(10 * time.Second))
			}
			c := NewIO(rawConn(t, a))
			buf := make([]byte, 16)
			n, sent, err := c.SendRead([]byte("ping"), buf)
			if sent != 4 || !c.Waited() {
				t.Fatalf("SendRead sent %d, waited %v; want 4, true", sent, c.Waited())
			}
			switch {
			case tt.wantTO:
				if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("SendRead: %d %v, want a timeout", n, err)
				}
			case tt.wantEOF:
				if n != 0 || err != io.EOF {
					t.Fatalf("SendRead: %d %v, want EOF", n, err)
				}
			case tt.wantReset:
				var oe *net.OpError
				if n != 0 || !errors.As(err, &oe) || oe.Op != "read" || !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("SendRead: %d %#v, want a read *net.OpError with ECONNRESET", n, err)
				}
			default:
				if err != nil || string(buf[:n]) != tt.want {
					t.Fatalf("SendRead read %q %v, want %q", buf[:n], err, tt.want)
				}
			}
			<-done
		})
	}
}

// TestSendReadDeadlinePassed: a wait that cannot start writes and reads
// nothing and is no error: the caller writes and reads the ordinary way.
func TestSendReadDeadlinePassed(t *testing.T) {
	a, _ := pair(t)
	a.SetReadDeadline(time.Now().Add(-time.Second))
	c := NewIO(rawConn(t, a))
	n, sent, err := c.SendRead([]byte("ping"), make([]byte, 4))
	if n != 0 || sent != 0 || c.Waited() || err != nil {
		t.Fatalf("SendRead = %d, %d, %v (waited %v); want 0, 0, nil, false", n, sent, err, c.Waited())
	}
}

// TestSendReadFullBuffer: a peer that does not read fills the socket
// buffers; SendRead returns what it wrote without an error, without
// waiting and without reading.
func TestSendReadFullBuffer(t *testing.T) {
	a, _ := pair(t)
	a.SetWriteBuffer(4096)
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	p := make([]byte, 16<<20)
	c := NewIO(rawConn(t, a))
	n, sent, err := c.SendRead(p, make([]byte, 4))
	if err != nil || c.Waited() || n != 0 || sent <= 0 || sent >= len(p) {
		t.Fatalf("SendRead = %d, %d, %v (waited %v); want 0, 0 < sent < %d, nil, false", n, sent, err, c.Waited(), len(p))
	}
}

// TestSendReadClosed: writing to a connection the peer reset is a write
// error the caller can classify (EPIPE or ECONNRESET inside a
// *net.OpError whose Op is "write").
func TestSendReadClosed(t *testing.T) {
	a, b := pair(t)
	b.SetLinger(0)
	b.Close() // RST
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	c := NewIO(rawConn(t, a))
	buf := make([]byte, 4)
	// The reset arrives asynchronously on loopback; a bounded number of
	// sends sees it, as a write error or (the reset came while waiting) a
	// read error.
	for i := 0; i < 100; i++ {
		_, _, err := c.SendRead([]byte("ping"), buf)
		if err == nil {
			continue
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
			t.Fatalf("err %#v, want a *net.OpError with EPIPE or ECONNRESET", err)
		}
		if oe.Op == "write" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no write error after the peer's reset")
}

// TestSendReadAllocs: a send, its wait and the reply's read allocate
// nothing.
func TestSendReadAllocs(t *testing.T) {
	a, b := pair(t)
	go func() { // echoes every byte back
		buf := make([]byte, 1)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
			if _, err := b.Write(buf); err != nil {
				return
			}
		}
	}()
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	c := NewIO(rawConn(t, a))
	p, reply := []byte("x"), make([]byte, 1)
	n := testing.AllocsPerRun(100, func() {
		if n, sent, err := c.SendRead(p, reply); n != 1 || sent != 1 || err != nil || reply[0] != 'x' {
			t.Fatalf("SendRead = %d, %d, %v, read %q", n, sent, err, reply)
		}
	})
	if n != 0 && !race.Enabled {
		t.Fatalf("%v allocs per SendRead, want 0", n)
	}
}

// TestPeek: a peek sees waiting bytes without taking them, nothing
// (EAGAIN) without waiting, the peer's FIN (0, no error) and a reset.
func TestPeek(t *testing.T) {
	peek := func(c *net.TCPConn) (n int, e syscall.Errno) {
		if err := rawConn(t, c).Control(func(fd uintptr) { n, e = Peek(fd, make([]byte, 8)) }); err != nil {
			t.Fatal(err)
		}
		return n, e
	}
	// eventually peeks until want holds: loopback delivers asynchronously
	// (bounded: 200 tries, 5 ms apart).
	eventually := func(c *net.TCPConn, what string, want func(int, syscall.Errno) bool) {
		t.Helper()
		for range 200 {
			if n, e := peek(c); want(n, e) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		n, e := peek(c)
		t.Fatalf("%s: peek = %d, %v", what, n, e)
	}

	a, b := pair(t)
	if n, e := peek(a); n != 0 || e != syscall.EAGAIN {
		t.Fatalf("nothing sent: peek = %d, %v; want 0, EAGAIN", n, e)
	}
	b.Write([]byte("hello"))
	eventually(a, "bytes sent", func(n int, e syscall.Errno) bool { return n == 5 && e == 0 })
	buf := make([]byte, 8)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read after the peek: %q, %v; the peek took the bytes", buf[:n], err)
	}
	b.Close()
	eventually(a, "FIN", func(n int, e syscall.Errno) bool { return n == 0 && e == 0 })

	c, d := pair(t)
	d.SetLinger(0)
	d.Close()
	eventually(c, "reset", func(n int, e syscall.Errno) bool { return n == 0 && e == syscall.ECONNRESET })
}

func TestIORead(t *testing.T) {
	tests := []struct {
		name    string
		peer    func(p *net.TCPConn)
		timeout time.Duration
		want    string
		wantErr func(error) bool
	}{
		{name: "data", peer: func(p *net.TCPConn) { p.Write([]byte("hello")) }, want: "hello"},
		{name: "eof", peer: func(p *net.TCPConn) { p.Close() }, wantErr: func(err error) bool { return err == io.EOF }},
		{name: "deadline", peer: func(*net.TCPConn) {}, timeout: 30 * time.Millisecond,
			wantErr: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{name: "reset", peer: func(p *net.TCPConn) { p.SetLinger(0); p.Close() },
			wantErr: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pair(t)
			if tt.timeout == 0 {
				tt.timeout = 10 * time.Second
			}
			a.SetReadDeadline(time.Now().Add(tt.timeout))
			// The peer acts after the read started waiting (a 1-byte
			// read never returns before it).
			go func() { time.Sleep(10 * time.Millisecond); tt.peer(b) }()
			c := NewIO(rawConn(t, a))
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			if tt.wantErr != nil {
				if n != 0 || !tt.wantErr(err) {
					t.Fatalf("Read = %d, %v", n, err)
				}
				return
			}
			if err != nil || string(buf[:n]) != tt.want {
				t.Fatalf("Read = %q, %v; want %q", buf[:n], err, tt.want)
			}
		})
	}
}

// TestIOWriteWaitsForRoom: a write larger than the socket buffers waits
// for the reader and writes everything, like net.Conn.Write.
func TestIOWriteWaitsForRoom(t *testing.T) {
	a, b := pair(t)
	a.SetWriteDeadline(time.Now().Add(10 * time.Second))
	p := make([]byte, 8<<20)
	for i := range p {
		p[i] = byte(i)
	}
	got := make(chan []byte, 1)
	go func() {
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf, _ := io.ReadAll(io.LimitReader(b, int64(len(p))))
		got <- buf
	}()
	n, err := NewIO(rawConn(t, a)).Write(p)
	if n != len(p) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
	}
	if buf := <-got; string(buf) != string(p) {
		t.Fatalf("the reader got %d bytes, not what was written", len(buf))
	}
}

// TestIOWriteDeadline: a write nobody reads ends at the write deadline with
// the net package's timeout error and the count written.
func TestIOWriteDeadline(t *testing.T) {
	a, _ := pair(t)
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	p := make([]byte, 64<<20)
	n, err := NewIO(rawConn(t, a)).Write(p)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(p) {
		t.Fatalf("Write = %d, %v; want a partial write and a timeout", n, err)
	}
}

// TestIOWriteReset: writing to a connection the peer reset reports the
// reset (ECONNRESET, or EPIPE once the kernel knows) as an error and does
// not take the process down: on Linux the write is sendto with
// MSG_NOSIGNAL, elsewhere the runtime ignores SIGPIPE on sockets.
func TestIOWriteReset(t *testing.T) {
	a, b := pair(t)
	b.SetLinger(0)
	b.Close()
	a.SetWriteDeadline(time.Now().Add(10 * time.Second))
	c := NewIO(rawConn(t, a))
	var err error
	// The reset arrives asynchronously: the first write may still be
	// accepted; a bounded number of writes must see it.
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write([]byte("after the reset"))
		if err == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write after the peer's reset = %v, want ECONNRESET or EPIPE", err)
	}
}

// TestIOAllocs: a read and a write allocate nothing.
func TestIOAllocs(t *testing.T) {
	a, b := pair(t)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	ca, cb := NewIO(rawConn(t, a)), NewIO(rawConn(t, b))
	p, q := []byte("ping"), make([]byte, 4)
	n := testing.AllocsPerRun(100, func() {
		if _, err := ca.Write(p); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(cb, q); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 && !race.Enabled {
		t.Fatalf("%v allocs per write and read, want 0", n)
	}
}

// TestWrapTCPUnderTLS: TLS layered on a wrapped connection handshakes and
// carries data both ways, with the wrapped socket's deadlines.
func TestWrapTCPUnderTLS(t *testing.T) {
	ca := testca.New(t, "rawsock test CA")
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "server", x509.ExtKeyUsageServerAuth)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	a, b := pair(t)
	wa, wb := WrapTCP(a), WrapTCP(b)
	if _, ok := wa.(*Conn); !ok {
		t.Fatalf("WrapTCP(*net.TCPConn) = %T, want *Conn", wa)
	}
	srv := tls.Server(wb, &tls.Config{Certificates: []tls.Certificate{cert}})
	cli := tls.Client(wa, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	cli.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(srv, buf); err != nil {
			errc <- err
			return
		}
		_, err := srv.Write(append(buf, "-ok"...))
		errc <- err
	}()
	if _, err := cli.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(cli, buf); err != nil || string(buf) != "ping-ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The deadline set through the TLS connection reaches the raw reads.
	cli.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := cli.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the deadline: %v, want a timeout", err)
	}
}

func TestWrapTCPOther(t *testing.T) {
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if got := WrapTCP(p); got != p {
		t.Fatalf("WrapTCP(pipe) = %T, want the pipe itself", got)
	}
}
