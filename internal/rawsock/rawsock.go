//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

// Package rawsock does, on a socket's syscall.RawConn, what the net
// package cannot do without an extra system call.
//
// IO.SendRead writes the last bytes of a message, waits until the socket
// is readable (the peer's reply) and reads the reply, in one step. The net
// package's Read tries the system call before it waits on the network
// poller, so a read right after sending a request (or a response, on a
// keep-alive connection) always fails first: the peer has not answered
// yet. The wait cannot simply be entered without that read, because the
// runtime resets the socket's readiness at the start of every read and
// would miss bytes that came before. A raw read callback runs after that
// reset: written from the callback, the message's reply cannot be missed,
// and the same callback reads it once the wait is over (one fd lock and
// one readiness reset for the write, the wait and the read).
//
// What arrived before the callback (after the caller's last read) is not
// seen by the wait: callers use SendRead only where the peer sends nothing
// unasked (an upstream between responses), or detect it (the HTTP/1.1
// server's pipelining check).
package rawsock
