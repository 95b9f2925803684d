package limit

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
	testredis "github.com/pingap-go/pingap/internal/testutil/redis"
)

// benchRun drives one plugin's three phases on a reused context, the way
// the engine does, from parallel goroutines with 256 client IPs.
func benchRun(b *testing.B, p *Plugin) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := plugintest.NewCtx("GET", "/")
		i := 0
		for pb.Next() {
			i++
			c.ClientIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			c.Resp.Header.Reset()
			if p.Request(c) {
				b.Fatal("refused")
			}
			p.Response(c)
			p.Finish(c)
		}
	})
}

func BenchmarkRateLocal(b *testing.B) {
	p, err := New(plugin.Env{Name: "b", Logger: slog.New(slog.DiscardHandler)}, map[string]any{"max": int64(1000), "interval": "1ms"})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, p.(*Plugin))
}

func BenchmarkInflightLocal(b *testing.B) {
	p, err := New(plugin.Env{Name: "b", Logger: slog.New(slog.DiscardHandler)}, map[string]any{"max": int64(1000), "type": "inflight"})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, p.(*Plugin))
}

func BenchmarkRateRedis(b *testing.B) {
	addr := testredis.Start(b)
	p, err := New(plugin.Env{Name: "b", Logger: slog.New(slog.DiscardHandler)}, map[string]any{"max": int64(1 << 40), "interval": "1s", "redis": "redis://" + addr})
	if err != nil {
		b.Fatal(err)
	}
	defer p.(*Plugin).Close()
	benchRun(b, p.(*Plugin))
}
