package httpx

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readChunked(t testing.TB, in string, bufSize int, trailer *Header, max int) (string, error) {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	r := NewChunkedReader(br, trailer, max)
	b, err := io.ReadAll(r)
	return string(b), err
}

func TestChunkedReaderValid(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		body    string
		trailer []Field
		rest    string // bytes left in the reader after the body
	}{
		{"empty body", "0\r\n\r\n", "", nil, ""},
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", nil, ""},
		{"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", nil, ""},
		{"upper hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", nil, ""},
		{"lower hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789", nil, ""},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", nil, ""},
		{"ext name", "5;foo\r\nhello\r\n0\r\n\r\n", "hello", nil, ""},
		{"ext token value", "5;foo=bar\r\nhello\r\n0;x=y\r\n\r\n", "hello", nil, ""},
		{"ext quoted value", "5;foo=\"b a;r\\\"q\"\r\nhello\r\n0\r\n\r\n", "hello", nil, ""},
		{"ext several", "5;a;b=c ; d = \"e\"\r\nhello\r\n0\r\n\r\n", "hello", nil, ""},
		{"ext BWS before semicolon", "5 ;a\r\nhello\r\n0\r\n\r\n", "hello", nil, ""},
		{"ext empty quoted", "5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello", nil, ""},
		{"trailers", "5\r\nhello\r\n0\r\nGrpc-Status: 0\r\nX-Sum:  abc \r\n\r\n", "hello",
			[]Field{{"Grpc-Status", "0"}, {"X-Sum", "abc"}}, ""},
		{"trailer empty value", "0\r\nX-E:\r\n\r\n", "", []Field{{"X-E", ""}}, ""},
		{"trailer obs-text", "0\r\nX-U: caf\xc3\xa9\r\n\r\n", "", []Field{{"X-U", "caf\xc3\xa9"}}, ""},
		{"next message untouched", "3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", "abc", nil, "HTTP/1.1 200 OK\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				var tr Header
				br := bufio.NewReaderSize(strings.NewReader(tt.in), size)
				r := NewChunkedReader(br, &tr, 0)
				b, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("bufsize %d: err %v", size, err)
				}
				if string(b) != tt.body {
					t.Fatalf("bufsize %d: body %q, want %q", size, b, tt.body)
				}
				if !r.Done() {
					t.Fatalf("Done() false after EOF")
				}
				if got := tr.Fields(); len(got) != len(tt.trailer) {
					t.Fatalf("trailer %v, want %v", got, tt.trailer)
				} else {
					for i := range got {
						if got[i] != tt.trailer[i] {
							t.Fatalf("trailer %v, want %v", got, tt.trailer)
						}
					}
				}
				rest, _ := io.ReadAll(br)
				if string(rest) != tt.rest {
					t.Fatalf("rest %q, want %q", rest, tt.rest)
				}
				// Further reads keep returning io.EOF.
				if n, err := r.Read(make([]byte, 4)); n != 0 || err != io.EOF {
					t.Fatalf("read after EOF = %d, %v", n, err)
				}
			}
		})
	}
}

func TestChunkedReaderMalformed(t *testing.T) {
	long := strings.Repeat("a", MaxChunkLineBytes)
	tests := []struct {
		name string
		in   string
		eof  bool // io.ErrUnexpectedEOF rather than ErrMalformedChunked
	}{
		{"empty size", "\r\nabc\r\n0\r\n\r\n", false},
		{"plus sign", "+5\r\nhello\r\n0\r\n\r\n", false},
		{"minus sign", "-5\r\nhello\r\n0\r\n\r\n", false},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", false},
		{"non hex", "g\r\nhello\r\n0\r\n\r\n", false},
		{"leading space", " 5\r\nhello\r\n0\r\n\r\n", false},
		{"trailing space", "5 \r\nhello\r\n0\r\n\r\n", false},
		{"trailing tab", "5\t\r\nhello\r\n0\r\n\r\n", false},
		{"overflow", "10000000000000000\r\nhello\r\n0\r\n\r\n", false},
		{"overflow max", "8000000000000000\r\nhello\r\n0\r\n\r\n", false},
		{"bare LF size line", "5\nhello\r\n0\r\n\r\n", false},
		{"bare CR size line", "5\rhello\r\n0\r\n\r\n", false},
		{"CR in size line", "5\r\r\nhello\r\n0\r\n\r\n", false},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", false},
		{"no CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", false},
		{"data longer than size", "3\r\nhello\r\n0\r\n\r\n", false},
		{"bare LF last chunk", "0\n\r\n", false},
		{"bare LF final line", "0\r\n\n", false},
		{"bare CR final line", "0\r\n\rX\r\n\r\n", false},
		{"ext empty", "5;\r\nhello\r\n0\r\n\r\n", false},
		{"ext no name", "5;=a\r\nhello\r\n0\r\n\r\n", false},
		{"ext no value", "5;a=\r\nhello\r\n0\r\n\r\n", false},
		{"ext bad name", "5;a@b\r\nhello\r\n0\r\n\r\n", false},
		{"ext bad value", "5;a=b@\r\nhello\r\n0\r\n\r\n", false},
		{"ext unterminated quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", false},
		{"ext junk after quote", "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", false},
		{"ext junk after name", "5;a b\r\nhello\r\n0\r\n\r\n", false},
		{"ext without semicolon", "5 a\r\nhello\r\n0\r\n\r\n", false},
		{"ext NUL", "5;a\x00\r\nhello\r\n0\r\n\r\n", false},
		{"ext CTL in quote", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", false},
		{"ext too long", "5;" + long + "\r\nhello\r\n0\r\n\r\n", false},
		{"trailer no colon", "0\r\nX-A b\r\n\r\n", false},
		{"trailer space before colon", "0\r\nX-A : b\r\n\r\n", false},
		{"trailer empty name", "0\r\n: b\r\n\r\n", false},
		{"trailer obs-fold", "0\r\nX-A: b\r\n c\r\n\r\n", false},
		{"trailer bare LF", "0\r\nX-A: b\n\r\n", false},
		{"trailer bare CR in value", "0\r\nX-A: b\rc\r\n\r\n", false},
		{"trailer NUL in value", "0\r\nX-A: b\x00c\r\n\r\n", false},
		{"trailer DEL in value", "0\r\nX-A: b\x7fc\r\n\r\n", false},
		{"trailer bad name", "0\r\nX(A): b\r\n\r\n", false},
		{"trailer too large", "0\r\nX-A: " + strings.Repeat("b", 200) + "\r\n\r\n", false},
		{"truncated size", "5", true},
		{"truncated data", "5\r\nhel", true},
		{"truncated after data", "5\r\nhello", true},
		{"truncated CRLF", "5\r\nhello\r", true},
		{"truncated no last chunk", "5\r\nhello\r\n", true},
		{"truncated trailers", "0\r\nX-A: b\r\n", true},
		{"truncated final CRLF", "0\r\n", true},
		{"empty input", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				var tr Header
				_, err := readChunked(t, tt.in, size, &tr, 128)
				if err == nil {
					t.Fatalf("bufsize %d: no error", size)
				}
				if tt.eof {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("bufsize %d: err %v, want ErrUnexpectedEOF", size, err)
					}
				} else if !errors.Is(err, ErrMalformedChunked) {
					t.Fatalf("bufsize %d: err %v, want ErrMalformedChunked", size, err)
				}
				if tr.Len() != 0 {
					t.Fatalf("trailer filled on error: %v", tr.Fields())
				}
				// Also with trailers discarded.
				if _, err2 := readChunked(t, tt.in, size, nil, 128); err2 == nil {
					t.Fatalf("bufsize %d, nil trailer: no error", size)
				}
			}
		})
	}
}

func TestChunkedReaderEOFWithLastData(t *testing.T) {
	// When the terminating bytes are buffered, the Read that returns the
	// last data also returns io.EOF (lets a client reuse the connection at
	// once).
	br := bufio.NewReader(strings.NewReader("5\r\nhello\r\n0\r\n\r\n"))
	r := NewChunkedReader(br, nil, 0)
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if n != 5 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 5, EOF", n, err)
	}
}

func TestChunkedReaderOneByteReader(t *testing.T) {
	in := "5;x=\"y\"\r\nhello\r\n1\r\n!\r\n0\r\nA: b\r\n\r\n"
	var tr Header
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16)
	b, err := io.ReadAll(NewChunkedReader(br, &tr, 0))
	if err != nil || string(b) != "hello!" || tr.Get("A") != "b" {
		t.Fatalf("got %q %v %v", b, err, tr.Fields())
	}
}

func TestChunkedReaderReset(t *testing.T) {
	r := NewChunkedReader(bufio.NewReader(strings.NewReader("zz\r\n")), nil, 0)
	if _, err := io.ReadAll(r); !errors.Is(err, ErrMalformedChunked) {
		t.Fatalf("err %v", err)
	}
	var tr Header
	r.Reset(bufio.NewReader(strings.NewReader("2\r\nok\r\n0\r\nT: v\r\n\r\n")), &tr, 0)
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "ok" || tr.Get("t") != "v" {
		t.Fatalf("after Reset: %q %v %v", b, err, tr.Fields())
	}
}

func TestChunkedWriter(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewChunkedWriter(bw)
	w.Write([]byte("hello"))
	w.Write(nil)
	w.Write([]byte(strings.Repeat("x", 26)))
	var tr Header
	tr.Add("Grpc-Status", "0")
	if err := w.Close(&tr); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	want := "5\r\nhello\r\n1a\r\n" + strings.Repeat("x", 26) + "\r\n0\r\nGrpc-Status: 0\r\n\r\n"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
	buf.Reset()
	w.Reset(bw)
	if err := w.Close(nil); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	if buf.String() != "0\r\n\r\n" {
		t.Fatalf("empty body: %q", buf.String())
	}
}

func TestChunkedWriterInvalidTrailer(t *testing.T) {
	for _, f := range []Field{{"X-A", "b\r\nInjected: 1"}, {"Bad Name", "v"}, {"", "v"}, {"X", "a\x00"}} {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		w := NewChunkedWriter(bw)
		var tr Header
		tr.Add(f.Name, f.Value)
		if err := w.Close(&tr); !errors.Is(err, ErrInvalidTrailer) {
			t.Fatalf("%q: err %v", f, err)
		}
		bw.Flush()
		if buf.Len() != 0 {
			t.Fatalf("%q: wrote %q", f, buf.String())
		}
	}
}

// FuzzChunkedReader feeds arbitrary bytes to the reader (it must never
// panic) and round-trips every input it accepts through the writer.
func FuzzChunkedReader(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "5;a=\"b\"\r\nhello\r\n0\r\nX: y\r\n\r\n",
		"1\r\na\r\n1\r\nb\r\n0\r\nA: 1\r\nB: 2\r\n\r\n", "5\nhello", "ffffffffffffffff\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var tr Header
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		body, err := io.ReadAll(NewChunkedReader(br, &tr, 1024))
		if err != nil {
			return
		}
		var enc bytes.Buffer
		bw := bufio.NewWriter(&enc)
		w := NewChunkedWriter(bw)
		// Split the body into a few chunks to vary the framing.
		for rest := body; len(rest) > 0; {
			n := 1 + len(rest)/3
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Close(&tr); err != nil {
			t.Fatalf("re-encoding accepted trailers: %v", err)
		}
		bw.Flush()
		var tr2 Header
		body2, err := io.ReadAll(NewChunkedReader(bufio.NewReader(&enc), &tr2, 1<<20))
		if err != nil {
			t.Fatalf("round trip: %v (%q)", err, enc.Bytes())
		}
		if !bytes.Equal(body, body2) {
			t.Fatalf("round trip body %q != %q", body2, body)
		}
		if tr.Len() != tr2.Len() {
			t.Fatalf("round trip trailers %v != %v", tr2.Fields(), tr.Fields())
		}
		for i, f := range tr.Fields() {
			if tr2.Fields()[i] != f {
				t.Fatalf("round trip trailers %v != %v", tr2.Fields(), tr.Fields())
			}
		}
	})
}
