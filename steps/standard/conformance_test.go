package standard_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/steps/standard"
)

// TestConformance runs the core/coretest suite of each stage on its built-in implementation,
// with a real state database, image store and snapshotter.
func TestConformance(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	env, _ := coretest.NewEnvWith(t, core.Options{Root: tempRoot(t), Images: images.Factory})
	var buf bytes.Buffer
	img := imagetest.Image{Tags: []string{testImage}, Platform: images.HostPlatform(),
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/app"}},
		Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/bin/app", Content: []byte("x"), Mode: 0o755}}}}}
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, img); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Images.(*images.Store).Load(ctx, &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	resolved, err := env.Images.Resolve(ctx, testImage, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := standard.Pipeline(standard.Config{})
	validReq := func() *spec.CreateRequest {
		return &spec.CreateRequest{Name: "ok", Config: &container.Config{Image: testImage, Env: []string{"A=1"}}, HostConfig: &container.HostConfig{}}
	}
	verifier := coretest.Build[core.Verifier](t, env, p.Stages[spec.StageVerify])
	record := func(t *testing.T) *spec.Record {
		v, err := verifier.Verify(ctx, validReq())
		if err != nil {
			t.Fatal(err)
		}
		rec := &spec.Record{ID: core.NewID(), Request: v, Image: resolved}
		rec.Merged = &spec.Merged{Config: v.Config, HostConfig: v.HostConfig, Path: "/bin/app"}
		rec.Security = &spec.Security{}
		return rec
	}

	t.Run("verify", func(t *testing.T) { coretest.TestVerifier(t, verifier, validReq) })
	t.Run("image", func(t *testing.T) {
		coretest.TestImageResolver(t, coretest.Build[core.ImageResolver](t, env, p.Stages[spec.StageImage]))
	})
	t.Run("merge", func(t *testing.T) {
		coretest.TestMerger(t, coretest.Build[core.Merger](t, env, p.Stages[spec.StageMerge]), func() *spec.Record { return record(t) })
	})
	t.Run("register", func(t *testing.T) {
		coretest.TestRegistrar(t, coretest.Build[core.Registrar](t, env, p.Stages[spec.StageRegister]), env)
	})
	t.Run("security", func(t *testing.T) {
		s := coretest.Build[core.Securer](t, env, p.Stages[spec.StageSecurity])
		coretest.TestUndoer(t, coretest.Effect{Undo: s, NewRecord: record, Do: func(ctx context.Context, rec *spec.Record) error {
			out, err := s.Secure(ctx, rec)
			rec.Security = out
			return err
		}})
	})
	t.Run("network", func(t *testing.T) {
		n := coretest.Build[core.Networker](t, env, p.Stages[spec.StageNetwork])
		coretest.TestUndoer(t, coretest.Effect{Undo: n, NewRecord: record, Do: func(ctx context.Context, rec *spec.Record) error {
			out, err := n.ConfigureNetwork(ctx, rec)
			rec.Network = out
			return err
		}})
	})
	t.Run("layer", func(t *testing.T) {
		l := coretest.Build[core.Layerer](t, env, p.Stages[spec.StageLayer])
		coretest.TestUndoer(t, coretest.Effect{Undo: l, NewRecord: record,
			Do: func(ctx context.Context, rec *spec.Record) error {
				out, err := l.PrepareRootFS(ctx, rec)
				rec.RootFS = out
				return err
			},
			Gone: func(t *testing.T, rec *spec.Record) {
				mi, _ := os.ReadFile("/proc/self/mountinfo")
				if bytes.Contains(mi, []byte(rec.ID)) {
					t.Errorf("a mount of %s is left", rec.ID)
				}
				// The container's own snapshot directory is gone. (The others are the image's
				// layer, its init layer and the snapshots the stage made ahead: assertClean
				// checks that closing the stage removes those.)
				for _, dir := range []string{filepath.Dir(rec.RootFS.Data["UpperDir"]), rec.RootFS.Data["Dir"]} {
					if dir == "." || dir == "" {
						continue
					}
					if _, err := os.Stat(dir); err == nil {
						t.Errorf("snapshot directory %s of %s is left", dir, rec.ID)
					}
				}
			}})
	})
	t.Run("mkdir", func(t *testing.T) {
		d := coretest.Build[core.DirMaker](t, env, p.Stages[spec.StageMkdir])
		coretest.TestUndoer(t, coretest.Effect{Undo: d, NewRecord: record,
			Do: func(ctx context.Context, rec *spec.Record) error {
				out, err := d.MakeDirs(ctx, rec)
				rec.Dirs = out
				return err
			},
			Gone: func(t *testing.T, rec *spec.Record) {
				if _, err := os.Stat(filepath.Join(env.Root, "containers", rec.ID)); !os.IsNotExist(err) {
					t.Errorf("container directory left: %v", err)
				}
			}})
	})
}
