// Package upgrade implements the graceful binary upgrade: on SIGUSR2 the
// running process starts a new copy of its executable that inherits every
// listening socket (file descriptors 3, 4, ...), waits until the new process
// reports that it serves, then drains and exits. Because the sockets are
// shared, no connection is refused during the handover: connections queued
// in a listen backlog are accepted by whichever process calls accept first.
package upgrade

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// envFDs lists the inherited listeners' addresses in fd order; envReady is
// the fd the new process writes to once it serves.
const (
	envFDs   = "PINGAP_INHERITED_LISTENERS"
	envReady = "PINGAP_READY_FD"
)

// Inherited holds the listeners a process got from its parent.
type Inherited struct {
	mu    sync.Mutex
	byKey map[string][]net.Listener // "network addr" -> listeners
	ready *os.File
}

// FromEnv collects listeners passed by a parent process (none when this
// process was started normally).
func FromEnv() (*Inherited, error) {
	in := &Inherited{byKey: map[string][]net.Listener{}}
	spec := os.Getenv(envFDs)
	if spec == "" {
		return in, nil
	}
	os.Unsetenv(envFDs)
	for i, addr := range strings.Split(spec, ",") {
		f := os.NewFile(uintptr(3+i), "listener:"+addr)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited listener %s: %w", addr, err)
		}
		in.byKey[addr] = append(in.byKey[addr], ln)
	}
	if fd := os.Getenv(envReady); fd != "" {
		os.Unsetenv(envReady)
		n, err := strconv.Atoi(fd)
		if err == nil {
			in.ready = os.NewFile(uintptr(n), "ready")
		}
	}
	return in, nil
}

// Listen returns an inherited listener for addr when there is one, else a
// new one. It is the engine's Options.Listen.
func (in *Inherited) Listen(network, addr string) (net.Listener, error) {
	in.mu.Lock()
	if lns := in.byKey[addr]; len(lns) > 0 {
		ln := lns[0]
		in.byKey[addr] = lns[1:]
		in.mu.Unlock()
		return &tracked{Listener: ln, addr: addr}, nil
	}
	in.mu.Unlock()
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return &tracked{Listener: ln, addr: addr}, nil
}

// Ready tells the parent (if any) that this process serves, and closes
// inherited listeners the configuration did not use.
func (in *Inherited) Ready() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, lns := range in.byKey {
		for _, ln := range lns {
			ln.Close()
		}
		delete(in.byKey, k)
	}
	if in.ready != nil {
		in.ready.Write([]byte("ready\n"))
		in.ready.Close()
		in.ready = nil
	}
}

// tracked remembers the configured address a listener was opened for, so
// the new process can match inherited sockets to its own configuration,
// and can pause accepting during a handover (see Spawn).
type tracked struct {
	net.Listener
	addr string

	inAccept atomic.Int32 // goroutines inside Listener.Accept
	mu       sync.Mutex
	paused   chan struct{} // non-nil while paused; closed on resume or Close
}

// ConfiguredAddr returns the address as written in the configuration.
func (t *tracked) ConfiguredAddr() string { return t.addr }

// Accept waits while the listener is paused, then accepts.
func (t *tracked) Accept() (net.Conn, error) {
	for {
		t.mu.Lock()
		gate := t.paused
		t.mu.Unlock()
		if gate != nil {
			<-gate
		}
		t.inAccept.Add(1)
		c, err := t.Listener.Accept()
		t.inAccept.Add(-1)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && t.isPaused() {
			continue // woken by pause: wait at the gate
		}
		return c, err
	}
}

func (t *tracked) isPaused() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paused != nil
}

// Close closes the socket, then lets paused Accept calls see that.
func (t *tracked) Close() error {
	err := t.Listener.Close()
	t.mu.Lock()
	if t.paused != nil {
		close(t.paused)
		t.paused = nil
	}
	t.mu.Unlock()
	return err
}

// deadliner is what TCP and Unix listeners have.
type deadliner interface{ SetDeadline(time.Time) error }

// pause stops accepting and waits (bounded) until no goroutine is inside
// the socket's accept: a deadline in the past wakes those parked in the
// poller and keeps new ones out of the system call. Connections keep
// queueing in the kernel's backlog meanwhile.
func (t *tracked) pause() {
	t.mu.Lock()
	if t.paused == nil {
		t.paused = make(chan struct{})
	}
	t.mu.Unlock()
	d, ok := t.Listener.(deadliner)
	if !ok {
		return
	}
	d.SetDeadline(time.Unix(1, 0))
	for deadline := time.Now().Add(time.Second); t.inAccept.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// resume accepts again after a failed handover.
func (t *tracked) resume() {
	if d, ok := t.Listener.(deadliner); ok {
		d.SetDeadline(time.Time{})
	}
	t.mu.Lock()
	if t.paused != nil {
		close(t.paused)
		t.paused = nil
	}
	t.mu.Unlock()
}

// setNonblock puts the socket back into non-blocking mode. Handing a
// socket to a child process goes through os.File.Fd, which makes the
// socket (its open file description, shared by both processes) blocking;
// an accept issued on it then would block in the kernel, where closing
// the listener cannot interrupt it.
func (t *tracked) setNonblock() {
	sc, ok := t.Listener.(syscall.Conn)
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		rc.Control(setNonblockFd)
	}
}

// File returns a duplicate of the listener's socket.
func (t *tracked) File() (*os.File, error) {
	type filer interface{ File() (*os.File, error) }
	if f, ok := t.Listener.(filer); ok {
		return f.File()
	}
	return nil, errors.New("listener has no file descriptor")
}

// Spawn starts a new copy of the running executable with args, passing it
// the listeners, and waits up to timeout for it to report that it serves.
// On success the caller should drain and exit (it accepts no more
// connections: they queue in the shared backlog until the new process
// accepts them); on failure the new process is killed and the caller keeps
// serving.
//
// This process stops accepting for the handover: passing a socket to a
// child makes it blocking for a moment (os.File.Fd, here and in the
// child's net.FileListener), and an accept issued then would block in the
// kernel until a connection arrives, so that closing the listener for the
// drain would hang.
func Spawn(args []string, listeners []net.Listener, timeout time.Duration) (proc *os.Process, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var ts []*tracked
	for _, ln := range listeners {
		if t, ok := ln.(*tracked); ok {
			ts = append(ts, t)
		}
	}
	for _, t := range ts {
		t.pause()
	}
	defer func() {
		for _, t := range ts {
			t.setNonblock()
			if err != nil {
				t.resume()
			}
		}
	}()
	var files []*os.File
	var addrs []string
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, t := range ts {
		f, err := t.File()
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", t.addr, err)
		}
		files = append(files, f)
		addrs = append(addrs, t.addr)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	files = append(files, w)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(),
		envFDs+"="+strings.Join(addrs, ","),
		envReady+"="+strconv.Itoa(3+len(addrs)))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.Close()
	files = files[:len(files)-1]
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		n, err := io.ReadAtLeast(r, buf, 1)
		if n > 0 {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("new process exited before it was ready: %v", err)
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, err
		}
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("new process not ready after %v", timeout)
	}
	go cmd.Wait()
	return cmd.Process, nil
}
