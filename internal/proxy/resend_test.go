package proxy

import (
	"errors"
	"io"
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestResendable(t *testing.T) {
	broken := &httpx.TransportError{Op: "read", Sent: true, Err: io.ErrUnexpectedEOF}
	for _, tt := range []struct {
		name    string
		method  string
		body    string
		upgrade string
		err     error
		want    bool
	}{
		{"GET reset before the head", "GET", "", "", broken, true},
		{"HEAD", "HEAD", "", "", broken, true},
		{"POST is not idempotent", "POST", "", "", broken, false},
		{"GET with a body", "GET", "x", "", broken, false},
		{"upgrade", "GET", "", "websocket", broken, false},
		{"timeout", "GET", "", "", &httpx.TransportError{Op: "read", Sent: true, Timeout: true, Err: io.EOF}, false},
		{"malformed response", "GET", "", "", &httpx.TransportError{Op: "protocol", Sent: true, Err: io.EOF}, false},
		{"not a transport error", "GET", "", "", errors.New("x"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := plugintest.NewCtx(tt.method, "/")
			if tt.body != "" {
				plugintest.SetBody(c, tt.body)
			}
			if got := resendable(c, tt.upgrade, tt.err); got != tt.want {
				t.Fatalf("resendable = %v, want %v", got, tt.want)
			}
		})
	}
}
