package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pingap test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func startTLS(t *testing.T, h Handler, protos ...string) (string, *x509.CertPool) {
	cert, pool := selfSigned(t)
	addr, _ := startServer(t, h, Options{Name: "tls", TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   protos,
		MinVersion:   tls.VersionTLS12,
	}})
	return addr, pool
}

func TestHTTP2OverTLS(t *testing.T) {
	addr, pool := startTLS(t, HandlerFunc(echo), "h2", "http/1.1")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	for i := range 3 {
		resp, err := client.Post("https://"+addr+"/a//b/../c?x=1", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "body" {
			t.Fatalf("%d: proto %s status %d body %q", i, resp.Proto, resp.StatusCode, body)
		}
		want := map[string]string{"X-Proto": "HTTP/2.0", "X-Path": "/a/c", "X-Query": "x=1", "X-Scheme": "https",
			"X-Server": "tls", "X-Host": addr, "X-Host-Field": addr, "X-Client-Ip": "127.0.0.1", "X-Uri": "/a//b/../c?x=1"}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	}
}

func TestHTTP1OverTLS(t *testing.T) {
	addr, pool := startTLS(t, HandlerFunc(echo), "h2", "http/1.1")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.Header.Get("X-Scheme") != "https" || resp.Header.Get("X-Proto") != "HTTP/1.1" {
		t.Fatalf("proto %s scheme %q", resp.Proto, resp.Header.Get("X-Scheme"))
	}
}

// TestHTTP2Trailers sends request trailers and gets response trailers.
func TestHTTP2Trailers(t *testing.T) {
	addr, pool := startTLS(t, HandlerFunc(echo), "h2")
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "https://"+addr+"/t", pr)
	req.Trailer = http.Header{"X-Sum": nil}
	go func() {
		pw.Write([]byte("hello"))
		req.Trailer.Set("X-Sum", "99")
		pw.Close()
	}()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" || resp.Trailer.Get("X-Echo-Trailer") != "99" {
		t.Fatalf("body %q trailer %v", body, resp.Trailer)
	}
}

func TestHTTP2PanicAndNoResponse(t *testing.T) {
	addr, pool := startTLS(t, HandlerFunc(func(c *httpx.Ctx) {
		switch c.Req.Path {
		case "/panic":
			panic("boom")
		case "/silent":
			return
		}
		echo(c)
	}), "h2")
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, p := range []string{"/panic", "/silent"} {
		resp, err := client.Get("https://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !bytes.HasPrefix(body, []byte(`{"error":`)) {
			t.Fatalf("%s: status %d body %q", p, resp.StatusCode, body)
		}
	}
	resp, err := client.Get("https://" + addr + "/ok")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after panic: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestH2CPriorKnowledge(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{H2C: true})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Post("http://"+addr+"/x/./y", "text/plain", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "abc" || resp.Header.Get("X-Path") != "/x/y" || resp.Header.Get("X-Scheme") != "http" {
		t.Fatalf("proto %s body %q path %q", resp.Proto, body, resp.Header.Get("X-Path"))
	}
	// HTTP/1.1 still works on the same h2c-enabled listener, including a
	// request shorter than the preface.
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.0\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.0 on h2c listener: %d", resp.StatusCode)
	}
}

func TestH2CDisabledRefusesPreface(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send(h2Preface)
	resp, _ := c.read("GET")
	if resp.StatusCode < 400 {
		t.Fatalf("preface without h2c: status %d", resp.StatusCode)
	}
}

// TestH2CUpgrade performs an RFC 7540 §3.2 upgrade by hand: the response to
// the upgrading request arrives on stream 1.
func TestH2CUpgrade(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{H2C: true})
	c := dialRaw(t, addr)
	var settings bytes.Buffer
	fr := http2.NewFramer(&settings, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	payload := settings.Bytes()[9:] // strip the frame header
	c.send("GET /up?z HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
		"HTTP2-Settings: " + base64.RawURLEncoding.EncodeToString(payload) + "\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "h2c" {
		t.Fatalf("resp %v err %v", resp, err)
	}
	c.send(h2Preface)
	framer := http2.NewFramer(c.conn, c.br)
	framer.WriteSettings()
	dec := hpack.NewDecoder(4096, nil)
	var status, path string
	var body []byte
	for end := false; !end; {
		f, err := framer.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				framer.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				t.Fatalf("headers on stream %d", f.StreamID)
			}
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				switch hf.Name {
				case ":status":
					status = hf.Value
				case "x-path":
					path = hf.Value
				}
			}
			end = f.StreamEnded()
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			end = f.StreamEnded()
		}
	}
	if status != "200" || path != "/up" || len(body) != 0 {
		t.Fatalf("status %q path %q body %q", status, path, body)
	}
}

func TestHTTP2ShutdownSendsGoAway(t *testing.T) {
	cert, pool := selfSigned(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var n atomic.Int32
	addr, s := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		if n.Add(1) == 1 {
			close(entered)
			<-release
		}
		echo(c)
	}), Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}})
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	done := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/slow")
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = io.ErrUnexpectedEOF
			}
		}
		done <- err
	}()
	<-entered
	sd := make(chan error, 1)
	go func() { sd <- s.Shutdown(context.Background()) }()
	select {
	case err := <-sd:
		t.Fatalf("Shutdown returned %v with an h2 stream in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight h2 request: %v", err)
	}
	select {
	case err := <-sd:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestHTTPHandlerAdapter uses the exported adapter the way HTTP/3 will: on
// a plain net/http server.
func TestHTTPHandlerAdapter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: HTTPHandler(HandlerFunc(echo), "h3name")}
	go hs.Serve(ln)
	defer hs.Close()
	c := dialRaw(t, ln.Addr().String())
	c.send("POST /a/%2e%2e/b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
	resp, body := c.read("POST")
	if resp.StatusCode != 200 || body != "hi" || resp.Header.Get("X-Path") != "/b" || resp.Header.Get("X-Server") != "h3name" ||
		resp.Header.Get("X-Client-Ip") != "127.0.0.1" {
		t.Fatalf("status %d body %q header %v", resp.StatusCode, body, resp.Header)
	}
	c.send("GET / HTTP/1.1\r\nHost: bad host\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != 400 {
		t.Fatalf("bad host: status %d", resp.StatusCode)
	}
}
