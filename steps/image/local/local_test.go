package local_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/steps/image/local"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// stage builds the stage as the engine does, over a real store holding two images.
func stage(t *testing.T) core.ImageResolver {
	t.Helper()
	root := t.TempDir()
	db, err := bolt.Open(filepath.Join(root, "slipway.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	env := core.Env{Root: root, DB: db}
	store, err := images.New(context.Background(), env, images.WithHostPlatform(amd64))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = imagetest.WriteOCI(&buf, imagetest.Options{LayerGzip: true},
		imagetest.Image{Tags: []string{"busybox"}, Platform: amd64, Config: ocispec.ImageConfig{Cmd: []string{"sh"}},
			Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/bin/sh", Content: []byte("sh"), Mode: 0o755}}}}},
		imagetest.Image{Tags: []string{"example.com/arm:1"}, Platform: arm64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(context.Background(), &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	env.Images = store
	impl := local.Impl()
	if impl.Stage != spec.StageImage || impl.Name != "local" {
		t.Fatalf("Impl() = %s/%s", impl.Stage, impl.Name)
	}
	v, err := impl.New(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := v.(core.ImageResolver)
	if !ok {
		t.Fatalf("%T is not an ImageResolver", v)
	}
	return r
}

func record(image string, platform *ocispec.Platform) *spec.Record {
	return &spec.Record{Request: &spec.Verified{Config: &container.Config{Image: image}, Platform: platform}}
}

func TestResolveImage(t *testing.T) {
	r := stage(t)
	cases := []struct {
		name     string
		image    string
		platform *ocispec.Platform
		wantName string
		wantCmd  string
		warnings int
		class    errdefs.Class
		msg      string
	}{
		{name: "familiar", image: "busybox", wantName: "docker.io/library/busybox:latest", wantCmd: "sh"},
		{name: "full", image: "docker.io/library/busybox:latest", wantName: "docker.io/library/busybox:latest", wantCmd: "sh"},
		{name: "platform", image: "busybox", platform: &amd64, wantName: "docker.io/library/busybox:latest", wantCmd: "sh"},
		{name: "foreign warns", image: "example.com/arm:1", wantName: "example.com/arm:1", warnings: 1},
		{name: "missing", image: "test456", class: errdefs.NotFoundClass, msg: "No such image: test456:latest"},
		{name: "bad reference", image: "busybox:sha256:abc", class: errdefs.InvalidArgumentClass, msg: "invalid reference format"},
		{name: "wrong platform", image: "busybox", platform: &arm64, class: errdefs.NotFoundClass,
			msg: "image with reference busybox was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := r.ResolveImage(context.Background(), record(c.image, c.platform))
			if c.class != errdefs.Unknown {
				if errdefs.ClassOf(err) != c.class || err.Error() != c.msg {
					t.Fatalf("error = %v (%v), want %v %q", err, errdefs.ClassOf(err), c.class, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.Ref != c.image || img.Name != c.wantName {
				t.Errorf("Ref, Name = %q, %q; want %q, %q", img.Ref, img.Name, c.image, c.wantName)
			}
			if c.wantCmd != "" && !slices.Equal(img.Config.Cmd, []string{c.wantCmd}) {
				t.Errorf("Cmd = %q", img.Config.Cmd)
			}
			if len(img.Warnings) != c.warnings {
				t.Errorf("warnings = %q, want %d", img.Warnings, c.warnings)
			}
			if img.ID == "" || img.Manifest.Digest == "" {
				t.Errorf("image not filled in: %+v", img)
			}
		})
	}
}

func TestResolveByID(t *testing.T) {
	r := stage(t)
	img, err := r.ResolveImage(context.Background(), record("busybox", nil))
	if err != nil {
		t.Fatal(err)
	}
	short := img.ID[len("sha256:"):][:12]
	byID, err := r.ResolveImage(context.Background(), record(short, nil))
	if err != nil {
		t.Fatal(err)
	}
	if byID.ID != img.ID || byID.Ref != short || byID.Name != "" || byID.ChainID != img.ChainID || byID.ChainID == "" {
		t.Errorf("by short ID = %+v, want ID %s, Ref %s, no Name", byID, img.ID, short)
	}
}

func TestEmptyImageIsScratch(t *testing.T) {
	r := stage(t)
	img, err := r.ResolveImage(context.Background(), record("", nil))
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != "" || img.ChainID != "" || len(img.Layers) != 0 || img.Platform.OS == "" {
		t.Errorf("scratch image = %+v", img)
	}
	img, err = r.ResolveImage(context.Background(), record("", &arm64))
	if err != nil || img.Platform.Architecture != "arm64" {
		t.Errorf("scratch for arm64 = %+v, %v", img, err)
	}
}

func TestNoConfig(t *testing.T) {
	r := stage(t)
	_, err := r.ResolveImage(context.Background(), &spec.Record{Request: &spec.Verified{}})
	if !errdefs.IsInvalidArgument(err) || err.Error() != "config cannot be empty in order to create a container" {
		t.Errorf("error = %v", err)
	}
}

func TestNeedsAStore(t *testing.T) {
	_, err := local.Impl().New(context.Background(), core.Env{})
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("New without a store: %v, want FailedPrecondition", err)
	}
}
