package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// OutRequest is a request the proxy sends to one upstream addr. The proxy
// builds it from the client's request (hop-by-hop fields removed, forwarded
// fields added); a RoundTripper only frames and sends it.
type OutRequest struct {
	Method string
	// URI is the origin-form request target: normalized path plus "?query".
	URI string
	// Host is the Host header value to send.
	Host string
	// Header holds the fields to send. It contains no Host, hop-by-hop or
	// framing fields (Content-Length, Transfer-Encoding): the RoundTripper
	// writes those from ContentLength.
	Header *Header
	// Body is nil when there is none. ContentLength -1 means unknown: the
	// HTTP/1.1 client then sends it chunked.
	Body          io.Reader
	ContentLength int64
	// Trailer, when non-nil, is read after Body returned io.EOF and sent as
	// chunked trailers (HTTP/1.1) or trailers (HTTP/2).
	Trailer *Header
	// Upgrade asks for a protocol switch (WebSocket): Connection: Upgrade
	// and the Upgrade field are sent, and a 101 answer hands the connection
	// over in RoundTripResult.Upgraded.
	Upgrade string
	// ReadTimeout bounds the wait for the response head (504 when passed).
	ReadTimeout time.Duration
	// Now, when set, is a clock reading the caller took right before the
	// round trip (with its monotonic part): the HTTP/1.1 transport uses it
	// for the pool's idle check and the deadlines of a pooled connection
	// instead of reading the clock again. Zero: the transport reads it.
	Now time.Time
	// OnInformational, when set, receives 1xx responses (other than 101)
	// that arrive before the final one.
	OnInformational func(status int, h *Header) error
}

// RoundTripResult carries what a round trip gives besides the response.
type RoundTripResult struct {
	// Reused reports whether a pooled connection was used.
	Reused bool
	// Upgraded is the raw upstream connection after a 101 answer.
	Upgraded io.ReadWriteCloser
}

// RoundTripper sends requests to one upstream addr.
type RoundTripper interface {
	// RoundTrip sends req and fills resp's status, header and body. The
	// caller must read resp.Body to io.EOF or call CloseBody, which returns
	// the connection to the pool when the body was read whole and discards it
	// otherwise.
	RoundTrip(ctx context.Context, req *OutRequest, resp *Response) (RoundTripResult, error)
	// CloseIdle closes pooled idle connections (the addr was removed).
	CloseIdle()
}

// CloseBody releases a response body: io.Closer bodies are closed.
func CloseBody(r *Response) {
	if c, ok := r.Body.(io.Closer); ok {
		c.Close()
	}
	r.Body = nil
}

// TransportError describes a failed round trip so the proxy can choose
// between failover (nothing was sent), 502 and 504.
type TransportError struct {
	// Op is "dial", "write", "read" (waiting for the head) or "protocol"
	// (an invalid response).
	Op string
	// Sent reports whether any request byte may have reached the upstream.
	Sent    bool
	Timeout bool
	Err     error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("upstream %s: %v", e.Op, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsConnectError reports whether err is a failure before any byte of the
// request was sent, so another addr may be tried.
func IsConnectError(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && !te.Sent
}

// IsTimeout reports whether err is an upstream timeout (504).
func IsTimeout(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.Timeout
}
