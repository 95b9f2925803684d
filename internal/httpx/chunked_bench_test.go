package httpx

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// BenchmarkChunkedReader decodes a 64 KB body sent as 16 chunks of 4 KB.
func BenchmarkChunkedReader(b *testing.B) {
	var enc bytes.Buffer
	bw := bufio.NewWriter(&enc)
	w := NewChunkedWriter(bw)
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 16 {
		w.Write(chunk)
	}
	w.Close(nil)
	bw.Flush()
	in := enc.Bytes()
	src := bytes.NewReader(in)
	br := bufio.NewReader(src)
	r := NewChunkedReader(br, nil, 0)
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(16 * 4096)
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		r.Reset(br, nil, 0)
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkChunkedReaderSmall decodes a small body with extensions.
func BenchmarkChunkedReaderSmall(b *testing.B) {
	in := []byte("5;name=\"value\"\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	src := bytes.NewReader(in)
	br := bufio.NewReader(src)
	r := NewChunkedReader(br, nil, 0)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		r.Reset(br, nil, 0)
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkChunkedWriter encodes 16 chunks of 4 KB and a trailer.
func BenchmarkChunkedWriter(b *testing.B) {
	bw := bufio.NewWriterSize(io.Discard, 4096)
	w := NewChunkedWriter(bw)
	chunk := bytes.Repeat([]byte("x"), 4096)
	var tr Header
	tr.Add("Grpc-Status", "0")
	b.ReportAllocs()
	b.SetBytes(16 * 4096)
	for b.Loop() {
		w.Reset(bw)
		for range 16 {
			w.Write(chunk)
		}
		w.Close(&tr)
		bw.Flush()
	}
}

// BenchmarkReadHead parses a typical upstream response head, whole in the
// buffer as it usually arrives (the transport peeks before parsing); it
// allocates one string shared by all fields.
func BenchmarkReadHead(b *testing.B) {
	in := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 20:00:00 GMT\r\n" +
		"Content-Type: text/html\r\nContent-Length: 512\r\nConnection: keep-alive\r\nETag: \"5f-abc\"\r\n" +
		"Accept-Ranges: bytes\r\n\r\n")
	src := bytes.NewReader(in)
	br := bufio.NewReader(src)
	var p ResponseParser
	var resp Response
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		br.Peek(1)
		if _, err := p.ReadHead(br, &resp, 0); err != nil {
			b.Fatal(err)
		}
	}
}
