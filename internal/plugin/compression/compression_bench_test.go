package compression

import (
	"fmt"
	"testing"
)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Flush() error                { return nil }
func (discard) Close() error                { return nil }

// benchBody is 256 KB of JSON-like text with some variety (compresses about
// 5-10x, like real API responses).
func benchBody() []byte {
	var b []byte
	for i := 0; len(b) < 256<<10; i++ {
		b = fmt.Appendf(b, `{"id":%d,"user":"user%d","score":%d,"active":%t,"tags":["a%d","b%d"]}`+"\n",
			i, i*7919%10007, i*31%977, i%3 == 0, i%13, i%17)
	}
	return b[:256<<10]
}

// BenchmarkCodec measures compression throughput per codec at the default
// levels, writing a 256 KB body in 16 KB writes through a pooled encoder.
func BenchmarkCodec(b *testing.B) {
	data := benchBody()
	p := mustNew(b, map[string]any{})
	for codec, name := range codecNames {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w := p.filters[codec](discard{})
				for off := 0; off < len(data); off += 16 << 10 {
					if _, err := w.Write(data[off : off+16<<10]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
