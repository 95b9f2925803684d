//go:build linux

package server

import (
	"syscall"
	"testing"
	"time"
)

// onlyConn returns the server's one connection.
func onlyConn(t *testing.T, s *Server) *conn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(s.conns))
	}
	for c := range s.conns {
		return c
	}
	return nil
}

// TestEpollStaleEvents: an event for a connection that closed (its slot
// freed, perhaps reused by a new connection on the same fd number) or
// with an old generation wakes nothing.
func TestEpollStaleEvents(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{idleRelease: 10 * time.Millisecond})
	a := dialRaw(t, addr)
	waitConns(t, s, 1, 1)
	c := onlyConn(t, s)
	s.poll.mu.Lock()
	slot, gen := c.pk.slot-1, uint32(c.pk.ev.Pad)
	s.poll.mu.Unlock()

	s.poll.wake(slot, gen+1, syscall.EPOLLIN) // a generation that is not (yet) its
	if _, p := s.Conns(); p != 1 {
		t.Fatalf("a stale event resumed the connection: %d parked", p)
	}
	a.conn.Close()
	waitConns(t, s, 0, 0)
	s.poll.wake(slot, gen, syscall.EPOLLIN|syscall.EPOLLRDHUP) // its slot is free now

	b := dialRaw(t, addr) // likely the same fd number and the freed slot
	waitConns(t, s, 1, 1)
	s.poll.wake(slot, gen, syscall.EPOLLIN) // a's generation
	if _, p := s.Conns(); p != 1 {
		t.Fatalf("an event of a closed connection resumed another: %d parked", p)
	}
	b.send("GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := b.read("GET"); resp.Header.Get("X-Path") != "/b" {
		t.Fatalf("X-Path %q", resp.Header.Get("X-Path"))
	}
}
