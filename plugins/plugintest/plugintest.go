// Package plugintest runs Slipway stage plugins under test: in memory, through a real
// go-plugin gRPC connection (go-plugin's TestPluginGRPCConn), and as real binaries built by
// the test and launched by plugins/host, so that the core/coretest conformance suites can
// be run against a plugin exactly as against a built-in stage.
package plugintest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/sdk"
	"github.com/slipwayhq/slipway/steps/standard"
)

// Connect serves p in memory over a real go-plugin gRPC connection, configures it with
// config (nil: {}) and returns the host's client. Everything is closed when the test ends.
func Connect(t testing.TB, p sdk.Plugin, config json.RawMessage) *hostapi.Client {
	t.Helper()
	cl, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{hostapi.PluginKey: sdk.GRPCPlugin(p, hclog.NewNullLogger())})
	t.Cleanup(func() { cl.Close() })
	raw, err := cl.Dispense(hostapi.PluginKey)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*hostapi.Client)
	if err := c.Configure(context.Background(), config); err != nil {
		t.Fatalf("configure %s: %v", p.Name, err)
	}
	return c
}

// Stage returns the in-memory plugin p's stage st as the core interface (core.Networker for
// the network stage, ...), calling through the gRPC connection.
func Stage[T any](t testing.TB, p sdk.Plugin, st spec.Stage, config json.RawMessage) T {
	t.Helper()
	v, err := hostapi.StageView(st, Connect(t, p, config))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := v.(T)
	if !ok {
		var zero T
		t.Fatalf("stage %s of %s is %T, not %T", st, p.Name, v, zero)
	}
	return s
}

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Build builds the main package pkg (an import path, or a path relative to the test's
// directory) with `go build` and returns the binary's path and SHA-256 hex. Each package is
// built once per test process, into a directory under /var/tmp removed at exit by
// Cleanup.
func Build(t testing.TB, pkg string) (path, sha string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p, fileSHA(t, p)
	}
	if buildDir == "" {
		d, err := os.MkdirTemp(tempBase(), "slipway-plugins-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out, fileSHA(t, out)
}

// Cleanup removes the binaries Build made; call it from TestMain after m.Run.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	host.Shutdown()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	buildDir, built = "", map[string]string{}
}

func fileSHA(t testing.TB, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TempDir returns a directory removed when the test ends (unless $SLIPWAY_TEST_KEEP is set,
// for benchmarks that must not pay for the previous run's deletions), under
// $SLIPWAY_TEST_ROOT or /var/tmp (making directories under /tmp is slow on the machines we
// measured).
func TempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp(tempBase(), "slipway-plugintest-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SLIPWAY_TEST_KEEP") == "" {
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	return d
}

func tempBase() string {
	if b := os.Getenv("SLIPWAY_TEST_ROOT"); b != "" {
		return b
	}
	return "/var/tmp"
}

// Install builds pkg, installs it into a plugin store under root as name and returns a
// reference to the installed binary with config.
func Install(t testing.TB, root, pkg, name string, config json.RawMessage) host.PluginRef {
	t.Helper()
	p, _ := Build(t, pkg)
	st := host.NewStore(root)
	in, err := st.Install(context.Background(), name, p)
	if err != nil {
		t.Fatal(err)
	}
	ref := st.Ref(name, in.Digest)
	ref.Config = config
	return ref
}

// NetworkRecord returns a record as the stages before the network stage leave it, for the
// default network mode.
func NetworkRecord(t *testing.T) *spec.Record {
	return &spec.Record{ID: core.NewID(), Name: "c", Request: &spec.Verified{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{}},
		Merged: &spec.Merged{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{}, Path: "/bin/app"}}
}

// NetworkEffect is the coretest.Effect of a network stage.
func NetworkEffect(n core.Networker, newRecord func(t *testing.T) *spec.Record, gone func(t *testing.T, rec *spec.Record)) coretest.Effect {
	return coretest.Effect{Undo: n, NewRecord: newRecord, Gone: gone, Do: func(ctx context.Context, rec *spec.Record) error {
		out, err := n.ConfigureNetwork(ctx, rec)
		rec.Network = out
		return err
	}}
}

// Processes returns the pids of the processes running the binary at path, from /proc.
func Processes(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid := 0
		for _, c := range e.Name() {
			if c < '0' || c > '9' {
				pid = -1
				break
			}
			pid = pid*10 + int(c-'0')
		}
		if pid <= 0 {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if strings.TrimSuffix(exe, " (deleted)") == path {
			out = append(out, pid)
		}
	}
	return out
}

// TestImage is the image Engine loads: linux on the host's platform, one layer with the
// executable /bin/app, labelled app=test.
const TestImage = "example.com/app:1"

// Engine opens an engine on root (no fsync) with the default pipeline changed by change
// (nil: unchanged), closed when the test ends, and loads TestImage into its image store.
func Engine(t testing.TB, root string, change func(p core.Pipeline) core.Pipeline) *core.Engine {
	t.Helper()
	o := standard.Options(standard.Config{NoSync: true})
	if change != nil {
		p := change(*o.Pipeline)
		o.Pipeline = &p
	}
	o.Root, o.UndoTimeout = root, 10*time.Second
	e, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var buf bytes.Buffer
	img := imagetest.Image{Tags: []string{TestImage}, Platform: images.HostPlatform(),
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/app"}, Labels: map[string]string{"app": "test"}},
		Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/bin/app", Content: []byte("app"), Mode: 0o755}}}}}
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, img); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Images().(*images.Store).Load(context.Background(), &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// CopyBinary copies the executable at src to dst (mode 0755): an operator's own copy of a
// plugin, as a pipeline file would point at it.
func CopyBinary(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
