package storagecopy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/storagecopy"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

const pkg = "github.com/slipwayhq/slipway/examples/plugins/storagecopy/cmd/storagecopy"

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: copying image layers keeps their owners, which needs root (CI runs as root)")
	}
}

// fixture opens an engine with the test image and returns its content store and the image.
func fixture(t *testing.T) (content string, img *spec.Image) {
	t.Helper()
	root := plugintest.TempDir(t)
	e := plugintest.Engine(t, root, nil)
	img, err := e.Images().Resolve(context.Background(), plugintest.TestImage, nil)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "content"), img
}

func config(root, content string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"root":%q,"content":%q,"no_sync":true}`, root, content))
}

// snapshotDirs lists the native snapshotter's snapshot directories under the plugin's root.
func snapshotDirs(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "snapshots", "native", "snapshots"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// effect is the layer stage l under the undo conformance suite: after an undo only the
// shared snapshots (the image's layer and its init layer) are left.
func effect(l core.Layerer, img *spec.Image, root string) coretest.Effect {
	return coretest.Effect{
		Undo:      l,
		NewRecord: func(t *testing.T) *spec.Record { return &spec.Record{ID: core.NewID(), Name: "c", Image: img} },
		Do: func(ctx context.Context, rec *spec.Record) error {
			out, err := l.PrepareRootFS(ctx, rec)
			if err != nil {
				return err
			}
			rec.RootFS = out
			if out.Driver != "native" || len(out.Mounts) != 1 {
				return fmt.Errorf("root filesystem %+v, want one native bind mount", out)
			}
			b, err := os.ReadFile(filepath.Join(out.Mounts[0].Source, "bin", "app"))
			if err != nil || string(b) != "app" {
				return fmt.Errorf("the copy's /bin/app: %q %v", b, err)
			}
			if !strings.HasPrefix(out.Mounts[0].Source, root+"/") {
				return fmt.Errorf("the copy %s is not under the plugin's root %s", out.Mounts[0].Source, root)
			}
			return nil
		},
		Gone: func(t *testing.T, rec *spec.Record) {
			if d := snapshotDirs(t, root); len(d) != 2 {
				t.Errorf("snapshots after undo: %v, want the two shared ones", d)
			}
		},
	}
}

// TestConformanceInMemory runs the undo suite against the plugin served in memory over a
// real go-plugin gRPC connection.
func TestConformanceInMemory(t *testing.T) {
	needRoot(t)
	content, img := fixture(t)
	root := plugintest.TempDir(t)
	s := storagecopy.New()
	t.Cleanup(func() { s.Close() })
	l := plugintest.Stage[core.Layerer](t, sdk.Plugin{Name: "storagecopy", Layer: s, Config: &s.Config}, spec.StageLayer, config(root, content))
	coretest.TestUndoer(t, effect(l, img, root))
}

// TestConformanceBinary runs the undo suite against the built binary launched by the host.
func TestConformanceBinary(t *testing.T) {
	needRoot(t)
	content, img := fixture(t)
	root := plugintest.TempDir(t)
	ref := plugintest.Install(t, plugintest.TempDir(t), pkg, "storagecopy", config(root, content))
	v, err := host.New(context.Background(), spec.StageLayer, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.(core.Closer).Close() })
	coretest.TestUndoer(t, effect(v.(core.Layerer), img, root))
}

// TestBadConfig refuses a config without a content store before any call.
func TestBadConfig(t *testing.T) {
	ref := plugintest.Install(t, plugintest.TempDir(t), pkg, "storagecopy", config(plugintest.TempDir(t), "/nonexistent"))
	_, err := host.New(context.Background(), spec.StageLayer, ref, nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "is not a content store") {
		t.Fatalf("content that is not a content store: %v", err)
	}
}

// TestCreateThroughEngine creates, mounts and removes a container in a real engine whose
// layer stage is the plugin, configured without a content directory: the layers are
// streamed from the engine through the OpenBlob callback, the root filesystem is a copy
// under the plugin's root, the engine's own snapshot root is not used, slipway mount works
// through the plugin, and remove leaves only the shared snapshots.
func TestCreateThroughEngine(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	engineRoot, root := plugintest.TempDir(t), plugintest.TempDir(t)
	cfg := json.RawMessage(fmt.Sprintf(`{"root":%q,"no_sync":true}`, root))
	ref := plugintest.Install(t, engineRoot, pkg, "storagecopy", cfg)
	e := plugintest.Engine(t, engineRoot, func(p core.Pipeline) core.Pipeline { return p.With(host.Impl(spec.StageLayer, ref)) })
	resp, err := e.Create(ctx, spec.CreateRequest{Name: "copied", Config: &container.Config{Image: plugintest.TestImage}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.Record(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Implementations[spec.StageLayer], host.ImplName("storagecopy", ref.SHA256); got != want {
		t.Errorf("recorded layer implementation %q, want %q", got, want)
	}
	if rec.RootFS == nil || rec.RootFS.Driver != "native" || !strings.HasPrefix(rec.RootFS.Mounts[0].Source, root+"/") {
		t.Fatalf("root filesystem %+v, want a native copy under %s", rec.RootFS, root)
	}
	if b, err := os.ReadFile(filepath.Join(rec.RootFS.Mounts[0].Source, "bin", "app")); err != nil || string(b) != "app" {
		t.Errorf("the copy's /bin/app: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(engineRoot, "snapshots", "overlayfs", "snapshots")); len(ents) != 0 {
		t.Errorf("the engine's own snapshotter was used: %d snapshots", len(ents))
	}
	if d := snapshotDirs(t, root); len(d) != 3 {
		t.Errorf("plugin snapshots %v, want the layer, the init layer and the container's", d)
	}
	mnt, err := e.Mount(ctx, "copied")
	if err != nil {
		t.Fatalf("mount through the plugin: %v", err)
	}
	if !strings.HasPrefix(mnt, root+"/") {
		t.Errorf("mounted at %s, want below the plugin's root %s", mnt, root)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "bin", "app")); err != nil || string(b) != "app" {
		t.Errorf("the mounted /bin/app: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, ".dockerenv")); err != nil || len(b) != 0 {
		t.Errorf("the mounted /.dockerenv: %q %v (want the init layer's empty file)", b, err)
	}
	if err := e.Unmount(ctx, "copied"); err != nil {
		t.Fatalf("unmount through the plugin: %v", err)
	}
	if err := e.Remove(ctx, resp.ID, core.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := snapshotDirs(t, root); len(d) != 2 {
		t.Errorf("plugin snapshots after remove %v, want the two shared ones", d)
	}
	if ents, _ := os.ReadDir(filepath.Join(engineRoot, "containers")); len(ents) != 0 {
		t.Errorf("container directories left: %d", len(ents))
	}
}
