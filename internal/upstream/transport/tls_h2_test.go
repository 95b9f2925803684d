package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// newTLSBackend starts an HTTPS server with the PKI's server certificate
// that records the SNI it received.
func newTLSBackend(t *testing.T, pki *testPKI, h2 bool, clientAuth bool, h http.Handler) (addr string, sni func() string) {
	t.Helper()
	var mu sync.Mutex
	var lastSNI string
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = h2
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	ts.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			lastSNI = hello.ServerName
			mu.Unlock()
			return nil, nil
		},
	}
	if clientAuth {
		ts.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		ts.TLS.ClientCAs = pki.caPool
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "https://"), func() string {
		mu.Lock()
		defer mu.Unlock()
		return lastSNI
	}
}

func TestTLSUpstream(t *testing.T) {
	pki := newTestPKI(t)
	addr, sni := newTLSBackend(t, pki, false, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	}))
	tests := []struct {
		name    string
		cfg     config.Upstream
		wantSNI string
		ok      bool
	}{
		{"tls_ca", config.Upstream{TLS: true, TLSCA: pki.caFile}, "", true},
		{"tls_ca with sni", config.Upstream{TLS: true, TLSCA: pki.caFile, SNI: "upstream.test"}, "upstream.test", true},
		{"wrong sni", config.Upstream{TLS: true, TLSCA: pki.caFile, SNI: "other.test"}, "other.test", false},
		{"system roots", config.Upstream{TLS: true}, "", false},
		{"insecure_skip_verify", config.Upstream{TLS: true, InsecureSkipVerify: true}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newH1ForTest(t, tt.cfg, addr)
			_, body, _, err := do(t, rt, get("/", "h"))
			if !tt.ok {
				if !httpx.IsConnectError(err) {
					t.Fatalf("err %v, want a dial error", err)
				}
				return
			}
			if err != nil || body != "HTTP/1.1 true" {
				t.Fatalf("%q %v", body, err)
			}
			if got := sni(); got != tt.wantSNI {
				t.Fatalf("SNI %q, want %q", got, tt.wantSNI)
			}
			if _, _, res, err := do(t, rt, get("/", "h")); err != nil || !res.Reused {
				t.Fatalf("second request: %v reused=%v", err, res.Reused)
			}
		})
	}
}

func TestMTLSUpstream(t *testing.T) {
	pki := newTestPKI(t)
	addr, _ := newTLSBackend(t, pki, false, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	rt := newH1ForTest(t, config.Upstream{TLS: true, TLSCA: pki.caFile, TLSClientCert: pki.clientCert, TLSClientKey: pki.clientKey}, addr)
	if _, body, _, err := do(t, rt, get("/", "h")); err != nil || body != "client" {
		t.Fatalf("with client cert: %q %v", body, err)
	}
	rt = newH1ForTest(t, config.Upstream{TLS: true, TLSCA: pki.caFile}, addr)
	if _, _, _, err := do(t, rt, get("/", "h")); err == nil {
		t.Fatal("request without a client certificate succeeded")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	for _, tt := range []struct {
		cfg config.Upstream
		key string
	}{
		{config.Upstream{TLS: true, TLSCA: "/nonexistent/ca.pem"}, "tls_ca"},
		{config.Upstream{TLS: true, TLSCA: pki.clientKey}, "tls_ca"},
		{config.Upstream{TLS: true, TLSClientCert: pki.clientCert}, "tls_client_cert"},
		{config.Upstream{TLS: true, TLSClientCert: pki.clientCert, TLSClientKey: pki.serverKey}, "tls_client_cert"},
	} {
		_, err := New(tt.cfg, "127.0.0.1:1")
		if err == nil || !strings.HasPrefix(err.Error(), tt.key) {
			t.Fatalf("%+v: err %v, want one naming %s", tt.cfg, err, tt.key)
		}
	}
	if _, err := New(config.Upstream{}, "no-port"); err == nil {
		t.Fatal("addr without port accepted")
	}
}

// grpcLikeHandler echoes the request body, reports the request trailer and
// answers with grpc-status/grpc-message trailers.
var grpcLikeHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.Header().Set("Content-Type", "application/grpc")
	fmt.Fprintf(w, "%s %s %s %s req-trailer=%s te=%s", r.Proto, r.Host, r.RequestURI, body, r.Trailer.Get("X-Req-Trailer"), r.Header.Get("Te"))
	w.Header().Set("Grpc-Status", "0")
	w.Header().Set("Grpc-Message", "fine")
})

func checkH2(t *testing.T, rt httpx.RoundTripper) {
	t.Helper()
	for i := range 3 {
		var tr httpx.Header
		tr.Add("X-Req-Trailer", "rt")
		h := &httpx.Header{}
		h.Add("Content-Type", "application/grpc+proto")
		req := &httpx.OutRequest{Method: "POST", URI: "/pkg.Svc/Method?x=1", Host: "grpc.test", Header: h,
			Body: strings.NewReader("msg"), ContentLength: -1, Trailer: &tr}
		resp, body, _, err := do(t, rt, req)
		if err != nil {
			t.Fatal(err)
		}
		if want := "HTTP/2.0 grpc.test /pkg.Svc/Method?x=1 msg req-trailer=rt te=trailers"; body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
		if resp.Status != 200 || resp.Header.Get("content-type") != "application/grpc" {
			t.Fatalf("status %d header %v", resp.Status, resp.Header.Fields())
		}
		if resp.Trailer.Get("grpc-status") != "0" || resp.Trailer.Get("grpc-message") != "fine" {
			t.Fatalf("request %d: trailer %v", i, resp.Trailer.Fields())
		}
	}
	if dials, reused := rt.(Stats).Stats(); dials != 1 || reused != 2 {
		t.Fatalf("dials %d reused %d", dials, reused)
	}
}

func TestH2OverTLS(t *testing.T) {
	pki := newTestPKI(t)
	addr, _ := newTLSBackend(t, pki, true, false, grpcLikeHandler)
	rt, err := New(config.Upstream{TLS: true, HTTP2: true, TLSCA: pki.caFile}, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.CloseIdle()
	checkH2(t, rt)
}

func TestH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: grpcLikeHandler, Protocols: &protos}
	go srv.Serve(ln)
	defer srv.Close()
	rt, err := New(config.Upstream{HTTP2: true}, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.CloseIdle()
	checkH2(t, rt)
}

func TestH2Errors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rt, _ := New(config.Upstream{HTTP2: true}, addr)
	var resp httpx.Response
	_, err = rt.RoundTrip(context.Background(), get("/", "h"), &resp)
	if !httpx.IsConnectError(err) {
		t.Fatalf("refused: %v, want a dial error", err)
	}

	// read_timeout on a server that never answers.
	block := make(chan struct{})
	defer close(block)
	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block })}
	go srv.Serve(ln)
	defer srv.Close()
	rt, _ = New(config.Upstream{HTTP2: true}, ln.Addr().String())
	defer rt.CloseIdle()
	req := get("/", "h")
	req.ReadTimeout = 100e6
	_, err = rt.RoundTrip(context.Background(), req, &resp)
	var te *httpx.TransportError
	if !errors.As(err, &te) || !te.Timeout || te.Op != "read" {
		t.Fatalf("err %v, want read timeout", err)
	}
}
