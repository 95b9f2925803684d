//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/testutil/race"
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

func TestSendWait(t *testing.T) {
	tests := []struct {
		name string
		// peer handles what it received; it may answer.
		peer       func(peer *net.TCPConn, got []byte)
		deadline   time.Duration // the sender's read deadline (0: none)
		wantRead   string        // what the sender's read after the wait gets
		wantReadTO bool          // ... or a timeout
		wantEOF    bool          // ... or EOF
	}{
		{name: "reply", peer: func(p *net.TCPConn, got []byte) { p.Write(append([]byte("re:"), got...)) }, wantRead: "re:ping"},
		{name: "deadline", peer: func(*net.TCPConn, []byte) {}, deadline: 50 * time.Millisecond, wantReadTO: true},
		{name: "peer closes", peer: func(p *net.TCPConn, _ []byte) { p.Close() }, wantEOF: true},
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
			var s Sender
			n, waited, err := s.SendWait(rawConn(t, a), []byte("ping"))
			if n != 4 || !waited || err != nil {
				t.Fatalf("SendWait = %d, %v, %v; want 4, true, nil", n, waited, err)
			}
			buf := make([]byte, 16)
			m, err := a.Read(buf)
			switch {
			case tt.wantReadTO:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("read: %d %v, want a timeout", m, err)
				}
			case tt.wantEOF:
				if err != io.EOF {
					t.Fatalf("read: %d %v, want EOF", m, err)
				}
			default:
				if string(buf[:m]) != tt.wantRead {
					t.Fatalf("read %q %v, want %q", buf[:m], err, tt.wantRead)
				}
			}
			<-done
		})
	}
}

// TestSendWaitDeadlinePassed: a wait that cannot start writes nothing; the
// caller writes the ordinary way.
func TestSendWaitDeadlinePassed(t *testing.T) {
	a, _ := pair(t)
	a.SetReadDeadline(time.Now().Add(-time.Second))
	var s Sender
	n, waited, err := s.SendWait(rawConn(t, a), []byte("ping"))
	if n != 0 || waited || err != nil {
		t.Fatalf("SendWait = %d, %v, %v; want 0, false, nil", n, waited, err)
	}
}

// TestSendWaitFullBuffer: a peer that does not read fills the socket
// buffers; SendWait returns what it wrote without an error and without
// waiting.
func TestSendWaitFullBuffer(t *testing.T) {
	a, _ := pair(t)
	a.SetWriteBuffer(4096)
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	p := make([]byte, 16<<20)
	var s Sender
	n, waited, err := s.SendWait(rawConn(t, a), p)
	if err != nil || waited || n <= 0 || n >= len(p) {
		t.Fatalf("SendWait = %d, %v, %v; want 0 < n < %d, false, nil", n, waited, err, len(p))
	}
}

// TestSendWaitClosed: writing to a connection the peer reset is an error
// the caller can classify (EPIPE or ECONNRESET inside a *net.OpError).
func TestSendWaitClosed(t *testing.T) {
	a, b := pair(t)
	b.SetLinger(0)
	b.Close() // RST
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The reset arrives asynchronously on loopback; a bounded number of
	// sends sees it.
	var s Sender
	for i := 0; i < 100; i++ {
		_, _, err := s.SendWait(rawConn(t, a), []byte("ping"))
		if err == nil {
			continue
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
			t.Fatalf("err %#v, want a *net.OpError with EPIPE or ECONNRESET", err)
		}
		return
	}
	t.Fatal("no write error after the peer's reset")
}

// TestSendWaitAllocs: a send and its wait for the reply allocate nothing.
func TestSendWaitAllocs(t *testing.T) {
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
	rc := rawConn(t, a)
	var s Sender
	p, reply := []byte("x"), make([]byte, 1)
	n := testing.AllocsPerRun(100, func() {
		if n, waited, err := s.SendWait(rc, p); n != 1 || !waited || err != nil {
			t.Fatalf("SendWait = %d, %v, %v", n, waited, err)
		}
		if _, err := io.ReadFull(a, reply); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 && !race.Enabled {
		t.Fatalf("%v allocs per SendWait and read, want 0", n)
	}
}
