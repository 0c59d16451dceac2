package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/netfile"
	"github.com/slipwayhq/slipway/examples/plugins/storagecopy"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/host/testdata/noop/noop"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/plugins/sdk"
	verifymoby "github.com/slipwayhq/slipway/steps/verify/moby"
)

// benchRecord is a record as the network stage sees it in a real create: a verified
// request with moby's defaults, an image with three layers and the merged config.
func benchRecord(b *testing.B) *spec.Record {
	req := &spec.CreateRequest{Name: "bench", Config: &container.Config{Image: testImage, Cmd: []string{"/bin/app", "-v"},
		Env: []string{"A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Labels: map[string]string{"app": "bench"}},
		HostConfig: &container.HostConfig{}}
	v, err := verifymoby.New().Verify(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	img := &spec.Image{Ref: testImage, Name: "example.com/app:1", ID: "sha256:" + fmt.Sprintf("%064d", 1),
		Config: dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{Cmd: []string{"/bin/app"}, Env: []string{"A=1"}}}}
	for i := 0; i < 3; i++ {
		d := fmt.Sprintf("sha256:%064d", i+10)
		img.Layers = append(img.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.Digest("sha256:" + fmt.Sprintf("%064d", i+20)), Size: 1234})
		img.DiffIDs = append(img.DiffIDs, d)
	}
	return &spec.Record{ID: core.NewID(), Name: "bench", Request: v, Image: img,
		Merged: &spec.Merged{Config: v.Config, HostConfig: v.HostConfig, Path: "/bin/app", Args: []string{"-v"}}}
}

func benchNetwork(b *testing.B, n core.Networker, undo bool) { benchSpaced(b, n, undo, 0) }

// benchSpaced is benchNetwork with the host busy for spacing before each call, untimed.
func benchSpaced(b *testing.B, n core.Networker, undo bool, spacing time.Duration) {
	rec := benchRecord(b)
	js, _ := json.Marshal(rec)
	ctx := context.Background()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if spacing > 0 {
			b.StopTimer()
			for t := time.Now(); time.Since(t) < spacing; {
			}
			b.StartTimer()
		}
		start := time.Now()
		if _, err := n.ConfigureNetwork(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if undo {
			if err := n.Undo(ctx, rec); err != nil {
				b.Fatal(err)
			}
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	// After the loop: ResetTimer drops the metrics reported before it.
	b.ReportMetric(float64(len(js)), "record-bytes")
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
}

func benchPlugin(b *testing.B, grpcOnly bool, env *core.Env) { benchPluginSpaced(b, grpcOnly, env, 0) }

func benchPluginSpaced(b *testing.B, grpcOnly bool, env *core.Env, spacing time.Duration) {
	p, sha := plugintest.Build(b, "github.com/slipwayhq/slipway/plugins/host/testdata/noop")
	ref := host.PluginRef{Name: "noop", Path: p, SHA256: sha, GRPCOnly: grpcOnly}
	var (
		v   any
		err error
	)
	if env != nil {
		v, err = host.NewWithEnv(context.Background(), spec.StageNetwork, ref, *env)
	} else {
		v, err = host.New(context.Background(), spec.StageNetwork, ref, hclog.NewNullLogger())
	}
	if err != nil {
		b.Fatal(err)
	}
	defer v.(core.Closer).Close()
	benchSpaced(b, v.(core.Networker), false, spacing)
}

// BenchmarkCall measures one ConfigureNetwork call of a stage that does nothing, in process
// and through a plugin binary (over the fd channel, and over gRPC alone): the difference is
// what a plugin adds per call.
func BenchmarkCall(b *testing.B) {
	b.Run("inprocess", func(b *testing.B) { benchNetwork(b, noop.Net{}, false) })
	b.Run("plugin", func(b *testing.B) { benchPlugin(b, false, nil) })
	b.Run("plugin-grpc", func(b *testing.B) { benchPlugin(b, true, nil) })
	// With an engine environment every call is registered with the Host service (the noop
	// stage makes no callback): what offering callbacks adds to a call.
	b.Run("plugin-hostenv", func(b *testing.B) {
		benchPlugin(b, false, &core.Env{Logger: hclog.NewNullLogger(), Host: noHost{}})
	})
	// Calls 0.3 ms apart with the host busy in between, as in a create, where a plugin's
	// call follows other stages' work: the plugin has gone idle, and so has its vCPU.
	b.Run("plugin-spaced", func(b *testing.B) { benchPluginSpaced(b, false, nil, 300*time.Microsecond) })
}

// noHost is a core.Host that knows no container.
type noHost struct{}

func (noHost) Container(ctx context.Context, ref string) (*spec.Record, error) {
	return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
}
func (noHost) Containers(ctx context.Context) ([]*spec.Record, error) { return nil, nil }

// BenchmarkNetfile measures a ConfigureNetwork and its Undo of netfile (lease file without
// fsync), in process and as a plugin binary.
func BenchmarkNetfile(b *testing.B) {
	b.Run("inprocess", func(b *testing.B) {
		n := netfile.New()
		n.Config.Dir, n.Config.NoSync = plugintest.TempDir(b), true
		if err := n.Setup(context.Background(), hclog.NewNullLogger()); err != nil {
			b.Fatal(err)
		}
		benchNetwork(b, n, true)
	})
	b.Run("plugin", func(b *testing.B) {
		p, sha := plugintest.Build(b, netfilePkg)
		cfg := json.RawMessage(fmt.Sprintf(`{"dir":%q,"no_sync":true}`, plugintest.TempDir(b)))
		v, err := host.New(context.Background(), spec.StageNetwork, host.PluginRef{Name: "netfile", Path: p, SHA256: sha, Config: cfg}, hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		defer v.(core.Closer).Close()
		benchNetwork(b, v.(core.Networker), true)
	})
}

// BenchmarkCreate measures a whole create and remove through an engine whose network stage
// is netfile and layer stage storagecopy (native copies), in process and as plugin binaries
// launched by the host: the difference is what moving the two stages out of the engine
// costs. "default" is the built-in pipeline (IPAM, overlayfs), for reference.
func BenchmarkCreate(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipped: snapshots need root (CI runs as root)")
	}
	run := func(b *testing.B, change func(root string) func(core.Pipeline) core.Pipeline) {
		root := plugintest.TempDir(b)
		e := plugintest.Engine(b, root, change(root))
		ctx := context.Background()
		req := spec.CreateRequest{Config: &container.Config{Image: plugintest.TestImage}}
		// The first create unpacks the image; time the ones after.
		r, err := e.Create(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		e.Remove(ctx, r.ID, core.RemoveOptions{})
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r, err := e.Create(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Remove(ctx, r.ID, core.RemoveOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	netCfg := func(root string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"dir":%q,"no_sync":true}`, filepath.Join(root, "netfile")))
	}
	layerCfg := func(root string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"root":%q,"content":%q,"no_sync":true}`, filepath.Join(root, "storagecopy"), filepath.Join(root, "content")))
	}
	b.Run("default", func(b *testing.B) {
		run(b, func(string) func(core.Pipeline) core.Pipeline { return nil })
	})
	b.Run("inprocess", func(b *testing.B) {
		run(b, func(root string) func(core.Pipeline) core.Pipeline {
			return func(p core.Pipeline) core.Pipeline {
				net := core.Impl{Stage: spec.StageNetwork, Name: "netfile", New: func(ctx context.Context, env core.Env) (any, error) {
					n := netfile.New()
					if err := sdk.Decode(&n.Config, netCfg(root)); err != nil {
						return nil, err
					}
					return n, n.Setup(ctx, hclog.NewNullLogger())
				}}
				layer := core.Impl{Stage: spec.StageLayer, Name: "storagecopy", New: func(ctx context.Context, env core.Env) (any, error) {
					s := storagecopy.New()
					if err := sdk.Decode(&s.Config, layerCfg(root)); err != nil {
						return nil, err
					}
					return s, s.Setup(ctx, hclog.NewNullLogger())
				}}
				return p.With(net).With(layer)
			}
		})
	})
	plugins := func(grpcOnly bool) func(b *testing.B) {
		return func(b *testing.B) {
			run(b, func(root string) func(core.Pipeline) core.Pipeline {
				n := plugintest.Install(b, root, netfilePkg, "netfile", netCfg(root))
				l := plugintest.Install(b, root, "github.com/slipwayhq/slipway/examples/plugins/storagecopy/cmd/storagecopy", "storagecopy", layerCfg(root))
				n.GRPCOnly, l.GRPCOnly = grpcOnly, grpcOnly
				return func(p core.Pipeline) core.Pipeline {
					return p.With(host.Impl(spec.StageNetwork, n)).With(host.Impl(spec.StageLayer, l))
				}
			})
		}
	}
	b.Run("plugins", plugins(false))
	b.Run("plugins-grpc", plugins(true))
}
