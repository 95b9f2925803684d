package logging

import (
	"testing"
	"time"
)

func BenchmarkAppendAccess(b *testing.B) {
	c := testCtx()
	buf := make([]byte, 0, 1024)
	trace := "0af7651916cd43dd8448eb211c80319c"
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendAccess(buf[:0], c, now, trace)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAccessLog(b *testing.B) {
	a := NewAccessLogWriter(discard{})
	defer a.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := testCtx()
		for pb.Next() {
			a.Log(c, "")
		}
	})
}

func BenchmarkAppendStringEscapes(b *testing.B) {
	s := "/search?q=\"quoted\"&x=é中文\n"
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
