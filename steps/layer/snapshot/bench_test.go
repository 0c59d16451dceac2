package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/core/spec"
)

// BenchmarkPrepareUndo measures the hot path of a create and a remove: PrepareRootFS and
// Undo of a container of an image whose layers are unpacked already.
func BenchmarkPrepareUndo(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"auto", nil},
		{"auto-nosync", []Option{WithNoSync()}},
		{"native", []Option{WithSnapshotter(DriverNative)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			needRoot(b)
			s := newBlobStore()
			l := openWith(b, b.TempDir(), s, c.opts...)
			base := layerTar(b, dir("bin/"), file("bin/sh", "#!shell"), dir("etc/"), file("etc/passwd", "root:x:0:0"))
			top := layerTar(b, file("app", "app"))
			img := s.image(b, base, top)
			ctx := context.Background()
			warm := &spec.Record{ID: newID(b), Image: img}
			if _, err := l.PrepareRootFS(ctx, warm); err != nil {
				b.Fatal(err)
			}
			b.Logf("driver %s", l.Driver())
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = newID(b)
			}
			var prep time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rec := &spec.Record{ID: ids[i], Image: img}
				t0 := time.Now()
				fs, err := l.PrepareRootFS(ctx, rec)
				if err != nil {
					b.Fatal(err)
				}
				prep += time.Since(t0)
				rec.RootFS = fs
				if err := l.Undo(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(prep.Nanoseconds())/float64(b.N), "prepare-ns/op")
		})
	}
}
