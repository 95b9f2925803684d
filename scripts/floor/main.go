//go:build linux

// Command floor is a measuring stick, not part of pingap: the least an
// HTTP/1.1 keep-alive proxy can do per request on this machine, run as the
// shared harness's candidate (scripts/floor.sh). Each client connection gets
// its own upstream connection (round robin over -upstreams); a request is
// forwarded verbatim once its head is complete (GET only, no body), the
// response once its Content-Length is in. No header parsing, routing,
// pooling, metrics or timeouts.
//
//	-mode goroutine  one goroutine per connection, blocking reads and writes
//	                 through Go's network poller (what pingap builds on);
//	-mode epoll      one thread, one epoll set, non-blocking sockets outside
//	                 Go's poller (an nginx-style event loop).
//
// docs/performance.md ("The floor") has what it showed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

var (
	headEnd = []byte("\r\n\r\n")
	clName  = []byte("\ncontent-length:")
)

// responseLen is the length of the complete response at the start of b,
// or -1 while it is incomplete.
func responseLen(b []byte) (int, error) {
	he := bytes.Index(b, headEnd)
	if he < 0 {
		return -1, nil
	}
	i := indexFold(b[:he], clName)
	if i < 0 {
		return 0, errors.New("floor: response without Content-Length")
	}
	v := b[i+len(clName):]
	if j := bytes.IndexByte(v, '\r'); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	if err != nil {
		return 0, err
	}
	if len(b) < he+4+n {
		return -1, nil
	}
	return he + 4 + n, nil
}

// indexFold is bytes.Index with an ASCII case-insensitive match (needle in
// lower case).
func indexFold(b, needle []byte) int {
	for i := 0; i+len(needle) <= len(b); i++ {
		j := 0
		for j < len(needle) && b[i+j]|0x20 == needle[j]|0x20 {
			j++
		}
		if j == len(needle) {
			return i
		}
	}
	return -1
}

func main() {
	mode := flag.String("mode", "goroutine", "goroutine or epoll")
	listen := flag.String("listen", "127.0.0.1:18090", "listen address")
	ups := flag.String("upstreams", "127.0.0.1:19001,127.0.0.1:19002", "upstream addresses, comma separated")
	flag.Parse()
	upstreams := strings.Split(*ups, ",")
	var err error
	switch *mode {
	case "goroutine":
		err = serveGoroutines(*listen, upstreams)
	case "epoll":
		err = serveEpoll(*listen, upstreams)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	log.Fatal(err)
}

func serveGoroutines(addr string, upstreams []string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		u, err := net.Dial("tcp", upstreams[i%len(upstreams)])
		if err != nil {
			c.Close()
			log.Print(err)
			continue
		}
		go relay(c, u)
	}
}

// relay serves one client connection over its own upstream connection.
func relay(c, u net.Conn) {
	defer c.Close()
	defer u.Close()
	rb := make([]byte, 4096)
	ub := make([]byte, 4096)
	for {
		n, ok := readMessage(c, rb, requestDone)
		if !ok {
			return
		}
		if _, err := u.Write(rb[:n]); err != nil {
			return
		}
		if n, ok = readMessage(u, ub, responseDone); !ok {
			return
		}
		if _, err := c.Write(ub[:n]); err != nil {
			return
		}
	}
}

// readMessage reads from r into buf until buf holds a whole message
// (complete); it reports false on EOF, an error or a full buffer.
func readMessage(r io.Reader, buf []byte, complete func([]byte) (bool, error)) (int, bool) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		if err != nil {
			return 0, false
		}
		n += m
		whole, err := complete(buf[:n])
		if err != nil {
			log.Print(err)
			return 0, false
		}
		if whole {
			return n, true
		}
	}
	return 0, false
}

// pair is a client connection and its upstream connection in the loop.
type pair struct {
	cfd, ufd int
	rb, ub   []byte
	n, k     int // bytes in rb, ub
}

func sockaddr(a string) (syscall.Sockaddr, error) {
	ap, err := netip.ParseAddrPort(a)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("floor: want an IPv4 address:port, got %q", a)
	}
	return &syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}, nil
}

// dial connects (blocking: once per client connection), then makes the
// socket non-blocking.
func dial(sa syscall.Sockaddr) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	syscall.SetNonblock(fd, true)
	return fd, nil
}

// writeAll writes b to a non-blocking socket (small answers on loopback:
// a short write is an error here, not something to wait out).
func writeAll(fd int, b []byte) error {
	n, err := syscall.Write(fd, b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return io.ErrShortWrite
	}
	return nil
}

// requestDone and responseDone report whether b holds a whole request
// (GET: its head) or a whole response.
func requestDone(b []byte) (bool, error) { return bytes.Contains(b, headEnd), nil }

func responseDone(b []byte) (bool, error) {
	l, err := responseLen(b)
	return l >= 0, err
}

// step reads what from has into buf[*n:] and, once buf holds a whole
// message (complete), writes it to to. It reports whether the pair is
// done (EOF, an error, a full buffer).
func step(from, to int, buf []byte, n *int, complete func([]byte) (bool, error)) (done bool) {
	if *n == len(buf) {
		return true
	}
	m, err := syscall.Read(from, buf[*n:])
	if err == syscall.EAGAIN {
		return false
	}
	if m <= 0 {
		return true
	}
	*n += m
	whole, err := complete(buf[:*n])
	if err == nil && whole {
		err = writeAll(to, buf[:*n])
		*n = 0
	}
	if err != nil {
		log.Print(err)
		return true
	}
	return false
}

func serveEpoll(addr string, upstreams []string) error {
	runtime.LockOSThread()
	lsa, err := sockaddr(addr)
	if err != nil {
		return err
	}
	var usa []syscall.Sockaddr
	for _, a := range upstreams {
		sa, err := sockaddr(a)
		if err != nil {
			return err
		}
		usa = append(usa, sa)
	}
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(lfd, lsa); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	// Event data: -1 the listener, 2i pairs[i]'s client, 2i+1 its upstream.
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1}); err != nil {
		return err
	}
	var pairs []*pair
	var free []int32
	closePair := func(i int32) {
		p := pairs[i]
		syscall.Close(p.cfd)
		syscall.Close(p.ufd)
		pairs[i] = nil
		free = append(free, i)
	}
	events := make([]syscall.EpollEvent, 256)
	next := 0
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			if ev.Fd == -1 {
				for {
					cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					syscall.SetsockoptInt(cfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
					ufd, err := dial(usa[next%len(usa)])
					next++
					if err != nil {
						log.Print(err)
						syscall.Close(cfd)
						continue
					}
					p := &pair{cfd: cfd, ufd: ufd, rb: make([]byte, 4096), ub: make([]byte, 4096)}
					var i int32
					if len(free) > 0 {
						i = free[len(free)-1]
						free = free[:len(free)-1]
						pairs[i] = p
					} else {
						i = int32(len(pairs))
						pairs = append(pairs, p)
					}
					syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, cfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 2 * i})
					syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, ufd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 2*i + 1})
				}
				continue
			}
			i := ev.Fd / 2
			p := pairs[i]
			if p == nil {
				continue // closed earlier in this batch
			}
			var done bool
			if ev.Fd%2 == 0 {
				done = step(p.cfd, p.ufd, p.rb, &p.n, requestDone)
			} else {
				done = step(p.ufd, p.cfd, p.ub, &p.k, responseDone)
			}
			if done {
				closePair(i)
			}
		}
	}
}
