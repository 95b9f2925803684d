package upgrade

import (
	"net"
	"testing"
	"time"
)

// serveAccepts accepts on t until it fails, counting connections.
func serveAccepts(t *tracked) (accepted chan net.Conn, done chan error) {
	accepted, done = make(chan net.Conn, 16), make(chan error, 1)
	go func() {
		for {
			c, err := t.Accept()
			if err != nil {
				done <- err
				return
			}
			accepted <- c
		}
	}()
	return accepted, done
}

func newTracked(t *testing.T) *tracked {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracked{Listener: ln, addr: "127.0.0.1:0"}
	t.Cleanup(func() {
		if !t.Failed() { // after a failure Close may hang on a blocked accept
			tr.Close()
		}
	})
	return tr
}

// TestPausedListenerClosesAfterTheSocketTurnedBlocking: the handover makes
// the shared socket blocking (os.File.Fd); a paused listener keeps every
// accept out of the kernel, so Close returns at once even with connections
// queued, and the accept loop ends.
func TestPausedListenerClosesAfterTheSocketTurnedBlocking(t *testing.T) {
	tr := newTracked(t)
	accepted, done := serveAccepts(tr)
	// One connection first, so the loop is back in Accept afterwards.
	c1, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	(<-accepted).Close()

	tr.pause()
	f, err := tr.File()
	if err != nil {
		t.Fatal(err)
	}
	f.Fd() // what exec does with ExtraFiles: the socket is blocking now
	defer f.Close()
	c2, err := net.Dial("tcp", tr.Addr().String()) // queues in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a paused listener accepted a connection")
	case <-time.After(100 * time.Millisecond): // a negative check
	}
	tr.setNonblock()
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the accept loop did not end after Close")
	}
}

// TestResumeAcceptsQueuedConnections: after a failed handover the listener
// accepts again, including what queued meanwhile.
func TestResumeAcceptsQueuedConnections(t *testing.T) {
	tr := newTracked(t)
	accepted, _ := serveAccepts(tr)
	tr.pause()
	c, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr.setNonblock()
	tr.resume()
	select {
	case sc := <-accepted:
		sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("queued connection not accepted after resume")
	}
}
