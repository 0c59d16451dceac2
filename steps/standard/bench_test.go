package standard_test

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/core"
)

// The create benchmarks run the default pipeline (overlayfs where the kernel allows it)
// with the image already unpacked, with fsync on ("sync") and off ("nosync"). They report
// the median latency as p50-ms and, for the parallel one, creates/s.

func warm(b *testing.B, e *core.Engine) {
	b.Helper()
	r, err := e.Create(context.Background(), request("", ""))
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Remove(context.Background(), r.ID, core.RemoveOptions{}); err != nil {
		b.Fatal(err)
	}
}

func reportP50(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkCreate(b *testing.B) {
	needRoot(b)
	for _, mode := range []string{"sync", "nosync"} {
		b.Run(mode, func(b *testing.B) {
			e := open(b, nil, mode == "nosync")
			warm(b, e)
			d := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := e.Create(context.Background(), request("", "")); err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(start))
			}
			b.StopTimer()
			reportP50(b, d)
		})
	}
}

func BenchmarkCreateParallel8(b *testing.B) {
	needRoot(b)
	for _, mode := range []string{"sync", "nosync"} {
		b.Run(mode, func(b *testing.B) {
			e := open(b, nil, mode == "nosync")
			warm(b, e)
			var mu sync.Mutex
			var d []time.Duration
			var n atomic.Int64
			b.SetParallelism(max(1, 8/runtimeProcs())) // 8 callers
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var local []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := e.Create(context.Background(), request(fmt.Sprintf("p%d", n.Add(1)), "")); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				d = append(d, local...)
				mu.Unlock()
			})
			b.StopTimer()
			b.ReportMetric(float64(len(d))/time.Since(start).Seconds(), "creates/s")
			reportP50(b, d)
		})
	}
}

func BenchmarkRemove(b *testing.B) {
	needRoot(b)
	for _, mode := range []string{"sync", "nosync"} {
		b.Run(mode, func(b *testing.B) {
			e := open(b, nil, mode == "nosync")
			ids := make([]string, b.N)
			for i := range ids {
				r, err := e.Create(context.Background(), request("", ""))
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = r.ID
			}
			d := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for _, id := range ids {
				start := time.Now()
				if err := e.Remove(context.Background(), id, core.RemoveOptions{}); err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(start))
			}
			b.StopTimer()
			reportP50(b, d)
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
