package httpx

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func parseString(t testing.TB, in string, bufSize, max int) (*Request, RequestHead, error) {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	req := &Request{}
	rh, err := ReadRequest(br, req, max)
	return req, rh, err
}

func TestReadRequestValid(t *testing.T) {
	tests := []struct {
		name, in                 string
		method, uri, path, query string
		host, proto              string
		cl                       int64
		chunked, keepAlive, cont bool
		fields                   int
	}{
		{name: "simple", in: "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
			method: "GET", uri: "/a/b?x=1", path: "/a/b", query: "x=1", host: "example.com", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "leading CRLF ignored", in: "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", uri: "/", path: "/", host: "h", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "http10 no host", in: "GET / HTTP/1.0\r\n\r\n",
			method: "GET", uri: "/", path: "/", proto: "HTTP/1.0"},
		{name: "http10 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			method: "GET", uri: "/", path: "/", proto: "HTTP/1.0", keepAlive: true, fields: 1},
		{name: "connection close", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
			method: "GET", uri: "/", path: "/", host: "h", proto: "HTTP/1.1", fields: 2},
		{name: "content-length", in: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n",
			method: "POST", uri: "/p", path: "/p", host: "h", proto: "HTTP/1.1", cl: 42, keepAlive: true, fields: 2},
		{name: "identical CL duplicates collapse", in: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
			method: "POST", uri: "/p", path: "/p", host: "h", proto: "HTTP/1.1", cl: 5, keepAlive: true, fields: 2},
		{name: "CL list collapse", in: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
			method: "POST", uri: "/p", path: "/p", host: "h", proto: "HTTP/1.1", cl: 5, keepAlive: true, fields: 2},
		{name: "chunked", in: "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			method: "POST", uri: "/p", path: "/p", host: "h", proto: "HTTP/1.1", cl: -1, chunked: true, keepAlive: true, fields: 2},
		{name: "chunked case-insensitive", in: "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
			method: "POST", uri: "/p", path: "/p", host: "h", proto: "HTTP/1.1", cl: -1, chunked: true, keepAlive: true, fields: 2},
		{name: "expect continue", in: "PUT /p HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
			method: "PUT", uri: "/p", path: "/p", host: "h", proto: "HTTP/1.1", cl: 1, keepAlive: true, cont: true, fields: 3},
		{name: "absolute-form takes host from target", in: "GET http://Target.example:8080/x/../y?q HTTP/1.1\r\nHost: other\r\n\r\n",
			method: "GET", uri: "/x/../y?q", path: "/y", query: "q", host: "Target.example:8080", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "absolute-form no path", in: "GET https://t.example HTTP/1.1\r\nHost: t.example\r\n\r\n",
			method: "GET", uri: "/", path: "/", host: "t.example", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "absolute-form query only", in: "GET http://t?a=b HTTP/1.1\r\nHost: t\r\n\r\n",
			method: "GET", uri: "/?a=b", path: "/", query: "a=b", host: "t", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "asterisk OPTIONS", in: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "OPTIONS", uri: "*", path: "*", host: "h", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "normalized path", in: "GET /a//b/./c/%2e%2E/d HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", uri: "/a//b/./c/%2e%2E/d", path: "/a/b/d", host: "h", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "ipv6 host", in: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
			method: "GET", uri: "/", path: "/", host: "[::1]:8080", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "empty host allowed", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			method: "GET", uri: "/", path: "/", proto: "HTTP/1.1", keepAlive: true, fields: 1},
		{name: "OWS trimmed, obs-text ok", in: "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t v\xe9 x \t\r\n\r\n",
			method: "GET", uri: "/", path: "/", host: "h", proto: "HTTP/1.1", keepAlive: true, fields: 2},
		{name: "odd query chars", in: "GET /s?q={\"a\"|b} HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", uri: "/s?q={\"a\"|b}", path: "/s", query: "q={\"a\"|b}", host: "h", proto: "HTTP/1.1", keepAlive: true, fields: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				req, rh, err := parseString(t, tt.in, size, 1<<16)
				if err != nil {
					t.Fatalf("buf %d: unexpected error %v", size, err)
				}
				if req.Method != tt.method || req.RequestURI != tt.uri || req.Path != tt.path || req.RawQuery != tt.query ||
					req.Host != tt.host || req.Proto != tt.proto || req.ContentLength != tt.cl {
					t.Errorf("buf %d: got method=%q uri=%q path=%q query=%q host=%q proto=%q cl=%d",
						size, req.Method, req.RequestURI, req.Path, req.RawQuery, req.Host, req.Proto, req.ContentLength)
				}
				if rh.Chunked != tt.chunked || rh.KeepAlive != tt.keepAlive || rh.ExpectContinue != tt.cont {
					t.Errorf("buf %d: got %+v", size, rh)
				}
				if req.Header.Len() != tt.fields {
					t.Errorf("buf %d: %d fields, want %d: %v", size, req.Header.Len(), tt.fields, req.Header.Fields())
				}
				if rh.Size != len(tt.in) {
					t.Errorf("buf %d: size %d, want %d", size, rh.Size, len(tt.in))
				}
			}
		})
	}
}

func TestReadRequestFieldValues(t *testing.T) {
	req, _, err := parseString(t, "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t v x \t\r\nx-b:y\r\nContent-Length: 3, 3\r\nContent-length: 3\r\n\r\n", 4096, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("x-a"); got != "v x" {
		t.Errorf("X-A = %q", got)
	}
	if got := req.Header.Get("X-B"); got != "y" {
		t.Errorf("X-B = %q", got)
	}
	if n, v := req.Header.Count("Content-Length"), req.Header.Get("Content-Length"); n != 1 || v != "3" {
		t.Errorf("Content-Length collapsed to %d fields, value %q", n, v)
	}
}

// TestReadRequestHygiene covers every rule of the contract's "Request
// hygiene" and RFC 9112's MUST-rejects.
func TestReadRequestHygiene(t *testing.T) {
	tests := []struct {
		name, in string
		status   int
	}{
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
		{"tab before colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400},
		{"bare LF line end", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
		{"bare LF head end", "GET / HTTP/1.1\r\nHost: h\n\n", 400},
		{"bare LF in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400},
		{"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bare CR at line end", "GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", 400},
		{"bare CR leading", "\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400},
		{"NUL in name", "GET / HTTP/1.1\r\nHost: h\r\nX\x00: a\r\n\r\n", 400},
		{"NUL in target", "GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"CTL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", 400},
		{"missing host 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
		{"two hosts 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400},
		{"invalid host space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"invalid host userinfo", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400},
		{"invalid host slash", "GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", 400},
		{"invalid host port", "GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n", 400},
		{"invalid host ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
		{"invalid CL letters", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1a\r\n\r\n", 400},
		{"invalid CL sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", 400},
		{"invalid CL negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
		{"invalid CL empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400},
		{"invalid CL overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"invalid CL hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
		{"different CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"different CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400},
		{"TE not ending chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"TE gzip only", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400},
		{"TE chunked with param", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400},
		{"TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE unknown coding then chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"invalid method byte", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"invalid field name", "GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n", 400},
		{"empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: z\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: h\r\nJunk\r\n\r\n", 400},
		{"obs-fold SP", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400},
		{"obs-fold HTAB", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400},
		{"obs-fold first line", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},
		{"double space request line", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"trailing space request line", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: h\r\n\r\n", 400},
		{"lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400},
		{"HTTP/2 in request line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
		{"HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505},
		{"HTTP/3 short", "GET / HTTP/3\r\nHost: h\r\n\r\n", 400},
		{"asterisk not OPTIONS", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"authority-form GET", "GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501},
		{"absolute-form other scheme", "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"absolute-form empty host", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"absolute-form userinfo", "GET http://u:p@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"absolute-form still needs Host", "GET http://h/x HTTP/1.1\r\n\r\n", 400},
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"non-ASCII in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad percent in path", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"truncated percent in path", "GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"too many leading CRLF", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"leading bare LF", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"head too large", "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n", 431},
		{"head too large no end", "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 300), 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				_, _, err := parseString(t, tt.in, size, 256)
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("buf %d: got %v, want status %d", size, err, tt.status)
				}
				if pe.Status != tt.status {
					t.Fatalf("buf %d: got status %d (%s), want %d", size, pe.Status, pe.Msg, tt.status)
				}
			}
		})
	}
}

func TestReadRequestEOF(t *testing.T) {
	if _, _, err := parseString(t, "", 4096, 1024); err != io.EOF {
		t.Errorf("empty: %v, want io.EOF", err)
	}
	if _, _, err := parseString(t, "\r\n", 4096, 1024); err != io.EOF {
		t.Errorf("only CRLF: %v, want io.EOF", err)
	}
	if _, _, err := parseString(t, "GET / HTTP/1.1\r\nHo", 4096, 1024); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, _, err := parseString(t, "GET / HTTP/1.1\r\nHost: h\r\n"+strings.Repeat("X-A: b\r\n", 10), 16, 1024); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated slow path: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestReadRequestPipelined checks that a head is consumed exactly, leaving
// the next request (or body) in the reader.
func TestReadRequestPipelined(t *testing.T) {
	in := "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nBODY"
	for _, size := range []int{16, 4096} {
		br := bufio.NewReaderSize(strings.NewReader(in), size)
		for _, want := range []string{"/1", "/2"} {
			req := &Request{}
			if _, err := ReadRequest(br, req, 1024); err != nil {
				t.Fatal(err)
			}
			if req.Path != want {
				t.Fatalf("buf %d: path %q want %q", size, req.Path, want)
			}
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "BODY" {
			t.Fatalf("buf %d: rest %q", size, rest)
		}
	}
}

func TestReadRequestLargeHeadWithinLimit(t *testing.T) {
	big := strings.Repeat("v", 10000)
	in := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + big + "\r\n\r\nNEXT"
	br := bufio.NewReaderSize(strings.NewReader(in), 4096)
	req := &Request{}
	if _, err := ReadRequest(br, req, 64<<10); err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("X-Big") != big {
		t.Fatal("big value mangled")
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "NEXT" {
		t.Fatalf("rest %q", rest)
	}
}

func TestReadRequestReusesFields(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader(strings.Repeat("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", 3)), 4096)
	req := &Request{}
	if _, err := ReadRequest(br, req, 1024); err != nil {
		t.Fatal(err)
	}
	p := &req.Header.Fields()[0]
	req.Header.Reset()
	if _, err := ReadRequest(br, req, 1024); err != nil {
		t.Fatal(err)
	}
	if &req.Header.Fields()[0] != p {
		t.Error("header field slice was not reused")
	}
}

func TestValidHost(t *testing.T) {
	good := []string{"", "a", "a.b.c", "a-b.example:80", "1.2.3.4:8080", "[::1]", "[::1]:443", "xn--bcher-kva.example", "a_b", "h:"}
	bad := []string{"a b", "a/b", "u@h", "[::1", "[]", "h:x", "h:123456", "a\"b", "[::1]x", "h:1:2"}
	for _, h := range good {
		if !ValidHost(h) {
			t.Errorf("ValidHost(%q) = false", h)
		}
	}
	for _, h := range bad {
		if ValidHost(h) {
			t.Errorf("ValidHost(%q) = true", h)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a/../b?x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET http://h:1/%2e%2e/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"OPTIONS * HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\nContent-Length: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
		"\r\nGET //a//b/./c HTTP/1.1\r\nHost: [::1]:80\r\nX: y\r\n z\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, size := range []int{16, 4096} {
			req := &Request{}
			br := bufio.NewReaderSize(strings.NewReader(in), size)
			rh, err := ReadRequest(br, req, 1024)
			if err != nil {
				var pe *ProtocolError
				if errors.As(err, &pe) && (pe.Status < 400 || pe.Status > 599) {
					t.Fatalf("bad status %d", pe.Status)
				}
				continue
			}
			if rh.Size > len(in) || rh.Size > 1024+2*maxLeadingCRLF {
				t.Fatalf("size %d", rh.Size)
			}
			if !wireValidToken(req.Method) || (req.Proto != "HTTP/1.1" && req.Proto != "HTTP/1.0") {
				t.Fatalf("method %q proto %q", req.Method, req.Proto)
			}
			if req.Path != "*" {
				if req.Path == "" || req.Path[0] != '/' || strings.Contains(req.Path, "//") ||
					strings.Contains(req.Path, "/../") || strings.Contains(req.Path, "/./") ||
					strings.HasSuffix(req.Path, "/..") || strings.HasSuffix(req.Path, "/.") {
					t.Fatalf("path %q not normal", req.Path)
				}
			}
			if rh.Chunked != (req.ContentLength == -1) || req.ContentLength < -1 {
				t.Fatalf("framing chunked=%v cl=%d", rh.Chunked, req.ContentLength)
			}
			if rh.Chunked && req.Header.Has("Content-Length") {
				t.Fatal("chunked with Content-Length accepted")
			}
			if req.Header.Count("Content-Length") > 1 || req.Header.Count("Host") > 1 {
				t.Fatal("duplicate Content-Length or Host accepted")
			}
			if req.Proto == "HTTP/1.1" && !req.Header.Has("Host") {
				t.Fatal("HTTP/1.1 without Host accepted")
			}
			for _, fl := range req.Header.Fields() {
				if !wireValidToken(fl.Name) || strings.ContainsAny(fl.Value, "\r\n\x00") {
					t.Fatalf("field %q: %q", fl.Name, fl.Value)
				}
			}
		}
	})
}
