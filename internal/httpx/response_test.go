package httpx

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadHeadValid(t *testing.T) {
	long := strings.Repeat("v", 5000)
	tests := []struct {
		name    string
		in      string
		method  string
		status  int
		fields  []Field
		framing Framing
		length  int64 // BodyLength
		close   bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n", "GET", 200,
			[]Field{{"Content-Length", "5"}, {"X-A", "b"}}, FramingLength, 5, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 200,
			[]Field{{"Transfer-Encoding", "chunked"}}, FramingChunked, -1, false},
		{"chunked case", "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n", "GET", 200,
			[]Field{{"transfer-encoding", "Chunked"}}, FramingChunked, -1, false},
		{"until close", "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", "GET", 200, []Field{{"X", "y"}}, FramingClose, -1, false},
		{"no reason", "HTTP/1.1 204 \r\n\r\n", "GET", 204, nil, FramingNone, 0, false},
		{"no reason no SP", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET", 200,
			[]Field{{"Content-Length", "0"}}, FramingLength, 0, false},
		{"reason with spaces", "HTTP/1.1 404 Not  Found at all\r\nContent-Length: 0\r\n\r\n", "GET", 404,
			[]Field{{"Content-Length", "0"}}, FramingLength, 0, false},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "HEAD", 200,
			[]Field{{"Content-Length", "100"}}, FramingNone, 0, false},
		{"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", "GET", 304,
			[]Field{{"Content-Length", "100"}}, FramingNone, 0, false},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", "POST", 204, nil, FramingNone, 0, false},
		{"103", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", "GET", 103,
			[]Field{{"Link", "</a.css>; rel=preload"}}, FramingNone, 0, false},
		{"same CL twice", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", "GET", 200,
			[]Field{{"Content-Length", "3"}, {"Content-Length", "3"}}, FramingLength, 3, false},
		{"CL list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", "GET", 200,
			[]Field{{"Content-Length", "3, 3"}}, FramingLength, 3, false},
		{"OWS trimmed", "HTTP/1.1 200 OK\r\nX-A: \t b c \t\r\nX-B:\r\nContent-Length:0 \r\n\r\n", "GET", 200,
			[]Field{{"X-A", "b c"}, {"X-B", ""}, {"Content-Length", "0"}}, FramingLength, 0, false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n", "GET", 200,
			[]Field{{"Connection", "keep-alive, Close"}, {"Content-Length", "0"}}, FramingLength, 0, true},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", 200,
			[]Field{{"Content-Length", "0"}}, FramingLength, 0, true},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "GET", 200,
			[]Field{{"Connection", "keep-alive"}, {"Content-Length", "0"}}, FramingLength, 0, false},
		{"obs-text value", "HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", "GET", 200,
			[]Field{{"X", "caf\xc3\xa9"}, {"Content-Length", "0"}}, FramingLength, 0, false},
		{"long field", "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nX-B: c\r\nContent-Length: 1\r\n\r\n", "GET", 200,
			[]Field{{"X-Long", long}, {"X-B", "c"}, {"Content-Length", "1"}}, FramingLength, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				var p ResponseParser
				var resp Response
				resp.Header.Add("Stale", "x")
				br := bufio.NewReaderSize(strings.NewReader(tt.in+"BODY"), size)
				head, err := p.ReadHead(br, &resp, 0)
				if err != nil {
					t.Fatalf("bufsize %d: %v", size, err)
				}
				if head.Status != tt.status || resp.Status != tt.status {
					t.Fatalf("status %d/%d, want %d", head.Status, resp.Status, tt.status)
				}
				got := resp.Header.Fields()
				if len(got) != len(tt.fields) {
					t.Fatalf("bufsize %d: fields %q, want %q", size, got, tt.fields)
				}
				for i := range got {
					if got[i] != tt.fields[i] {
						t.Fatalf("bufsize %d: fields %q, want %q", size, got, tt.fields)
					}
				}
				if f := head.Framing(tt.method); f != tt.framing {
					t.Fatalf("framing %d, want %d", f, tt.framing)
				}
				if l := head.BodyLength(tt.method); l != tt.length {
					t.Fatalf("body length %d, want %d", l, tt.length)
				}
				if head.Close != tt.close {
					t.Fatalf("close %v, want %v", head.Close, tt.close)
				}
				rest, _ := io.ReadAll(br)
				if string(rest) != "BODY" {
					t.Fatalf("rest %q", rest)
				}
			}
		})
	}
}

func TestReadHeadMalformed(t *testing.T) {
	tests := []struct{ name, in string }{
		{"two CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
		{"CL list differs", "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n"},
		{"CL empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"},
		{"CL sign", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n"},
		{"CL negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"CL hex", "HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\n"},
		{"CL overflow", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"},
		{"CL trailing comma", "HTTP/1.1 200 OK\r\nContent-Length: 3,\r\n\r\n"},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"TE and CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"},
		{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{"TE identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"},
		{"TE twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"TE in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"bad version", "HTTP/2.0 200 OK\r\n\r\n"},
		{"version 1.2", "HTTP/1.2 200 OK\r\n\r\n"},
		{"lower proto", "http/1.1 200 OK\r\n\r\n"},
		{"short status", "HTTP/1.1 20 OK\r\n\r\n"},
		{"status letters", "HTTP/1.1 2x0 OK\r\n\r\n"},
		{"status 099", "HTTP/1.1 099 OK\r\n\r\n"},
		{"status 600", "HTTP/1.1 600 OK\r\n\r\n"},
		{"status 4 digits", "HTTP/1.1 2000 OK\r\n\r\n"},
		{"two spaces", "HTTP/1.1  200 OK\r\n\r\n"},
		{"reason CTL", "HTTP/1.1 200 O\x01K\r\n\r\n"},
		{"bare LF status", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
		{"bare LF field", "HTTP/1.1 200 OK\r\nX: y\n\r\n"},
		{"bare LF end", "HTTP/1.1 200 OK\r\nX: y\r\n\n"},
		{"bare CR in value", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"},
		{"bare CR end", "HTTP/1.1 200 OK\r\nX: y\r\n\rZ\r\n\r\n"},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n"},
		{"space before colon", "HTTP/1.1 200 OK\r\nX : y\r\n\r\n"},
		{"no colon", "HTTP/1.1 200 OK\r\nX y\r\n\r\n"},
		{"empty name", "HTTP/1.1 200 OK\r\n: y\r\n\r\n"},
		{"bad name", "HTTP/1.1 200 OK\r\nX[1]: y\r\n\r\n"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"},
		{"leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n"},
		{"too large", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				var p ResponseParser
				var resp Response
				br := bufio.NewReaderSize(strings.NewReader(tt.in), size)
				_, err := p.ReadHead(br, &resp, 256)
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("bufsize %d: err %v, want ErrMalformedResponse", size, err)
				}
			}
		})
	}
}

func TestReadHeadEOF(t *testing.T) {
	var p ResponseParser
	var resp Response
	if _, err := p.ReadHead(bufio.NewReader(strings.NewReader("")), &resp, 0); err != io.EOF {
		t.Fatalf("empty: %v, want io.EOF", err)
	}
	for _, in := range []string{"HTTP/1.1 200", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nX: y\r\n", "HTTP/1.1 200 OK\r\nX: y\r"} {
		if _, err := p.ReadHead(bufio.NewReader(strings.NewReader(in)), &resp, 0); err != io.ErrUnexpectedEOF {
			t.Fatalf("%q: %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

func TestReadHeadInterimSequence(t *testing.T) {
	in := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	br := bufio.NewReader(strings.NewReader(in))
	var p ResponseParser
	var resp Response
	var seen []int
	for {
		head, err := p.ReadHead(br, &resp, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !IsInterim(head.Status) {
			break
		}
		seen = append(seen, head.Status)
	}
	if len(seen) != 2 || seen[0] != 100 || seen[1] != 103 || resp.Status != 200 || resp.Header.Get("content-length") != "2" {
		t.Fatalf("seen %v, final %d %v", seen, resp.Status, resp.Header.Fields())
	}
	if IsInterim(101) || !IsInterim(199) || IsInterim(200) {
		t.Fatal("IsInterim")
	}
}

// FuzzReadHead: whatever the input, an accepted head is valid, and the
// in-place parse of a head that is whole in the buffer (parseBuffered)
// agrees with the line-by-line one (a 16-byte buffer holds no head).
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 304 x\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nX: \t y \r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var p, pw ResponseParser
		var resp, rw Response
		head, err := p.ReadHead(bufio.NewReaderSize(strings.NewReader(string(in)), 16), &resp, 512)
		whole := bufio.NewReaderSize(strings.NewReader(string(in)), 4096)
		whole.Peek(1) // fill the buffer, as the transport does before ReadHead
		hw, errw := pw.ReadHead(whole, &rw, 512)
		if (err == nil) != (errw == nil) || errors.Is(err, ErrMalformedResponse) != errors.Is(errw, ErrMalformedResponse) {
			t.Fatalf("16-byte buffer: %v; whole buffer: %v", err, errw)
		}
		if err != nil {
			return
		}
		if *head != *hw || resp.Status != rw.Status || resp.ContentLength != rw.ContentLength {
			t.Fatalf("16-byte buffer: %+v %d %d; whole buffer: %+v %d %d", head, resp.Status, resp.ContentLength, hw, rw.Status, rw.ContentLength)
		}
		fs, fw := resp.Header.Fields(), rw.Header.Fields()
		if len(fs) != len(fw) {
			t.Fatalf("fields %q vs %q", fs, fw)
		}
		for i := range fs {
			if fs[i] != fw[i] {
				t.Fatalf("fields %q vs %q", fs, fw)
			}
		}
		if head.Chunked && head.ContentLength >= 0 {
			t.Fatal("chunked with Content-Length accepted")
		}
		for _, f := range resp.Header.Fields() {
			if !wireValidToken(f.Name) || !wireValidFieldValue(f.Value) {
				t.Fatalf("invalid field accepted: %q", f)
			}
		}
	})
}
