package logging

import (
	"testing"
	"time"
)

func BenchmarkAppendAccess(b *testing.B) {
	c := testCtx()
	buf := make([]byte, 0, 1024)
	trace := [16]byte{1, 2, 3}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendAccess(buf[:0], c, now, trace)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAccessLog(b *testing.B) {
	a, err := NewAccessLog("", discard{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := testCtx()
		for pb.Next() {
			a.Log(c, [16]byte{})
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
