package httpx

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/testutil/race"
)

func TestBodyFixed(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("hello worldNEXT"))
	var b Body
	var counter int64
	b.ResetFixed(br, 11)
	b.SetCounter(&counter)
	got, err := io.ReadAll(&b)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("got %q, %v", got, err)
	}
	if !b.Done() || counter != 11 || b.N() != 11 {
		t.Fatalf("done=%v counter=%d n=%d", b.Done(), counter, b.N())
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "NEXT" {
		t.Fatalf("over-read: rest %q", rest)
	}
}

func TestBodyFixedTruncated(t *testing.T) {
	var b Body
	b.ResetFixed(bufio.NewReader(strings.NewReader("abc")), 10)
	_, err := io.ReadAll(&b)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v", err)
	}
}

func TestBodyNone(t *testing.T) {
	var b Body
	b.ResetFixed(nil, 0)
	if n, err := b.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("got %d, %v", n, err)
	}
	if !b.Done() {
		t.Fatal("not done")
	}
}

func TestBodyChunkedTrailers(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\nNEXT"))
	var b Body
	var tr Header
	b.ResetChunked(br, &tr, 0)
	got, err := io.ReadAll(&b)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("got %q, %v", got, err)
	}
	if tr.Get("X-Sum") != "42" {
		t.Fatalf("trailer %v", tr.Fields())
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "NEXT" {
		t.Fatalf("rest %q", rest)
	}
}

func TestBodyChunkedMalformed(t *testing.T) {
	var b Body
	b.ResetChunked(bufio.NewReader(strings.NewReader("zz\r\nhello\r\n0\r\n\r\n")), nil, 0)
	_, err := io.ReadAll(&b)
	if !errors.Is(err, ErrMalformedChunked) {
		t.Fatalf("got %v", err)
	}
	if b.Drain(1 << 20) {
		t.Fatal("drain of a malformed body reported success")
	}
}

func TestBodyLimit(t *testing.T) {
	tests := []struct {
		name  string
		setup func(b *Body)
		limit int64
		want  string
		err   error
	}{
		{"fixed under", func(b *Body) { b.ResetFixed(bufio.NewReader(strings.NewReader("12345")), 5) }, 5, "12345", nil},
		{"fixed over", func(b *Body) { b.ResetFixed(bufio.NewReader(strings.NewReader("123456")), 6) }, 5, "", ErrBodyTooLarge},
		{"chunked at limit", func(b *Body) {
			b.ResetChunked(bufio.NewReader(strings.NewReader("5\r\n12345\r\n0\r\n\r\n")), nil, 0)
		}, 5, "12345", nil},
		{"chunked over", func(b *Body) {
			b.ResetChunked(bufio.NewReader(strings.NewReader("5\r\n12345\r\n1\r\n6\r\n0\r\n\r\n")), nil, 0)
		}, 5, "12345", ErrBodyTooLarge},
		{"stream over", func(b *Body) { b.ResetStream(strings.NewReader("1234567"), nil) }, 3, "123", ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Body
			tt.setup(&b)
			req := &Request{Body: &b}
			if !SetBodyLimit(req, tt.limit) {
				t.Fatal("SetBodyLimit refused")
			}
			got, err := io.ReadAll(&b)
			if string(got) != tt.want || err != tt.err {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

type eofHook struct{ called int }

func (h *eofHook) BodyEOF() { h.called++ }

func TestBodyStreamHook(t *testing.T) {
	var b Body
	h := &eofHook{}
	b.ResetStream(strings.NewReader("abc"), h)
	got, _ := io.ReadAll(&b)
	b.Read(make([]byte, 1))
	if string(got) != "abc" || h.called != 1 {
		t.Fatalf("got %q hook=%d", got, h.called)
	}
}

type recWriter struct{ strings.Builder }

func TestBodyContinue(t *testing.T) {
	var out recWriter
	bw := bufio.NewWriter(&out)
	var b Body
	b.ResetFixed(bufio.NewReader(strings.NewReader("abc")), 3)
	b.SetContinue(bw)
	if !b.ContinuePending() || out.Len() != 0 {
		t.Fatal("continue sent before the first read")
	}
	got, _ := io.ReadAll(&b)
	if string(got) != "abc" || out.String() != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("body %q, wrote %q", got, out.String())
	}
	// An empty body never asks for the 100.
	b.ResetNone()
	b.SetContinue(bw)
	if b.ContinuePending() {
		t.Fatal("continue pending for an empty body")
	}
}

func TestBodyDrain(t *testing.T) {
	var b Body
	br := bufio.NewReader(strings.NewReader("5\r\n12345\r\n0\r\n\r\nNEXT"))
	b.ResetChunked(br, nil, 0)
	if !b.Drain(100) {
		t.Fatal("drain failed")
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "NEXT" {
		t.Fatalf("rest %q", rest)
	}
	b.ResetChunked(bufio.NewReader(strings.NewReader("a\r\n1234567890\r\n0\r\n\r\n")), nil, 0)
	if b.Drain(5) {
		t.Fatal("drain past max reported success")
	}
	b.ResetFixed(bufio.NewReader(strings.NewReader("1234567890")), 10)
	if b.Drain(5) {
		t.Fatal("fixed drain past max reported success")
	}
	b.ResetFixed(bufio.NewReader(strings.NewReader("1234567890")), 10)
	if !b.Drain(10) || !b.Done() {
		t.Fatal("fixed drain failed")
	}
}

func TestBodyDrainChunkedNoAlloc(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	const in = "5\r\n12345\r\n0\r\n\r\n"
	r := strings.NewReader(in)
	br := bufio.NewReader(r)
	var b Body
	allocs := testing.AllocsPerRun(50, func() {
		r.Reset(in)
		br.Reset(r)
		b.ResetChunked(br, nil, 0)
		if !b.Drain(100) {
			t.Fatal("drain failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Drain allocates %v times", allocs)
	}
}

func TestBodyDrainStream(t *testing.T) {
	var b Body
	b.ResetStream(strings.NewReader("12345"), nil)
	if !b.Drain(5) {
		t.Fatal("drain of 5 bytes within 5 failed")
	}
	b.ResetStream(strings.NewReader("123456"), nil)
	if b.Drain(5) {
		t.Fatal("drain past max reported success")
	}
}

// TestBodyWhole: Whole reports a fixed-length body whose rest is already
// in the read buffer, and nothing else.
func TestBodyWhole(t *testing.T) {
	// buffered returns a reader over s that has read all of it into its
	// buffer (as a connection's reader holds what arrived).
	buffered := func(s string) *bufio.Reader {
		br := bufio.NewReaderSize(strings.NewReader(s), 64)
		br.Peek(len(s))
		return br
	}
	tests := []struct {
		name string
		body func() *Body
		want bool
	}{
		{"all arrived", func() *Body { var b Body; b.ResetFixed(buffered("hello"), 5); return &b }, true},
		{"part arrived", func() *Body {
			var b Body
			br := bufio.NewReaderSize(io.MultiReader(strings.NewReader("he"), strings.NewReader("llo")), 64)
			br.Peek(2)
			b.ResetFixed(br, 5)
			return &b
		}, false},
		{"chunked", func() *Body { var b Body; b.ResetChunked(buffered("5\r\nhello\r\n0\r\n\r\n"), nil, 0); return &b }, false},
		{"none", func() *Body { var b Body; b.ResetNone(); return &b }, false},
	}
	for _, tt := range tests {
		if got := tt.body().Whole(); got != tt.want {
			t.Errorf("%s: Whole = %v, want %v", tt.name, got, tt.want)
		}
	}
}
