package httpx

import (
	"bufio"
	"strings"
	"testing"
)

// A typical browser-ish request head (~500 bytes).
const benchHead = "GET /api/v1/users/123?fields=name,email HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: session=abcdef0123456789; theme=dark\r\n" +
	"Referer: https://app.example.com/dashboard\r\n" +
	"X-Request-Id: 7f3c9a2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

// BenchmarkParseRequest parses a realistic head from a reused reader into a
// reused Request: the target is one allocation (the head string).
func BenchmarkParseRequest(b *testing.B) {
	r := strings.NewReader(benchHead)
	br := bufio.NewReaderSize(r, 4096)
	req := &Request{}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchHead)))
	for b.Loop() {
		r.Reset(benchHead)
		br.Reset(r)
		req.Header.Reset()
		*req = Request{Header: req.Header}
		if _, err := ReadRequest(br, req, 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NormalizePath("/api/v1/users/123/profile")
	}
}

func BenchmarkNormalizePathDirty(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NormalizePath("/api//v1/./users/../users/123")
	}
}
