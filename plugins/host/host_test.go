package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/netfile"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/steps/standard"
)

const (
	netfilePkg   = "github.com/slipwayhq/slipway/examples/plugins/netfile/cmd/netfile"
	misbehavePkg = "github.com/slipwayhq/slipway/plugins/host/testdata/misbehave"
	testImage    = "example.com/app:1"
)

func TestMain(m *testing.M) {
	if os.Getenv("HOST_TEST_ENGINE") != "" {
		engineChild()
		return
	}
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: the default pipeline needs root for overlayfs snapshots (CI runs it as root)")
	}
}

func misbehaveConfig(mode, dir string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"mode":%q,"netfile":{"dir":%q,"subnet":"10.77.0.0/24","no_sync":true}}`, mode, dir))
}

// logBuffer is a host logger whose output the test can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// openEngine opens an engine with the default pipeline, its network stage replaced by ref,
// and loads the test image.
func openEngine(t *testing.T, root string, ref host.PluginRef, log hclog.Logger) (*core.Engine, error) {
	t.Helper()
	// Without the layer stage's pool of snapshots made ahead: assertClean counts the
	// snapshot directories while the engine runs.
	o := standard.Options(standard.Config{NoSync: true, NoSnapshotPool: true})
	p := o.Pipeline.With(host.Impl(spec.StageNetwork, ref))
	o.Pipeline, o.Root, o.Logger, o.UndoTimeout = &p, root, log, 10*time.Second
	e, err := core.Open(context.Background(), o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { e.Close() })
	loadTestImage(t, e)
	return e, nil
}

// loadTestImage loads the test image into the engine's image store.
func loadTestImage(t *testing.T, e *core.Engine) {
	t.Helper()
	var buf bytes.Buffer
	img := imagetest.Image{Tags: []string{testImage}, Platform: images.HostPlatform(),
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/app"}},
		Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/bin/app", Content: []byte("app"), Mode: 0o755}}}}}
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, img); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Images().(*images.Store).Load(context.Background(), &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func request(name string) spec.CreateRequest {
	return spec.CreateRequest{Name: name, Config: &container.Config{Image: testImage}, HostConfig: &container.HostConfig{}}
}

func snapshotDirs(root string) []string {
	var out []string
	for _, d := range []string{"overlayfs", "native"} {
		ents, _ := os.ReadDir(filepath.Join(root, "snapshots", d, "snapshots"))
		for _, e := range ents {
			out = append(out, d+"/"+e.Name())
		}
	}
	return out
}

// assertClean checks that nothing of any container is left: no record, directory, mount,
// snapshot beyond the base shared ones, or address lease in the plugin's file.
func assertClean(t *testing.T, e *core.Engine, leaseDir string, base int) {
	t.Helper()
	root := e.Root()
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("container directories left: %d", len(ents))
	}
	// A removed container's snapshot goes once the layer stage pauses (its reaper).
	deadline := time.Now().Add(10 * time.Second)
	s := snapshotDirs(root)
	for len(s) != base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		s = snapshotDirs(root)
	}
	if len(s) != base {
		t.Errorf("snapshots: %v, want %d shared ones", s, base)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(root)) {
		t.Errorf("mounts left under %s", root)
	}
	if list, err := e.List(context.Background(), core.ListOptions{All: true}); err != nil || len(list) != 0 {
		t.Errorf("containers left: %v %v", list, err)
	}
	if l, err := netfile.ReadLeases(leaseDir); err != nil || len(l) != 0 {
		t.Errorf("leases left: %v %v", l, err)
	}
}

// assertNoProcess checks that no process runs the binary at path, waiting a little for
// the kernel to finish killing.
func assertNoProcess(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids := plugintest.Processes(path)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes left: %v of %s", pids, path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMisbehavingPluginRunUndone makes the network plugin die by SIGKILL, hang past its
// deadline and panic in the middle of ConfigureNetwork, after it leased an address, inside
// a real engine with the default pipeline. Each create must fail with Unavailable naming
// the plugin, be undone with nothing left (the lease released by the restarted plugin),
// and the next create must succeed on a new plugin process.
func TestMisbehavingPluginRunUndone(t *testing.T) {
	needRoot(t)
	t.Run("fd-channel", func(t *testing.T) { testMisbehavingPluginRunUndone(t, false) })
	t.Run("grpc", func(t *testing.T) { testMisbehavingPluginRunUndone(t, true) })
}

func testMisbehavingPluginRunUndone(t *testing.T, grpcOnly bool) {
	for _, tc := range []struct{ mode, want string }{
		{"sigkill", "plugin misbehave failed during network.ConfigureNetwork"},
		{"sleep", "plugin misbehave did not answer network.ConfigureNetwork within 1s; killed it"},
		{"panic", "plugin misbehave failed during network.ConfigureNetwork: panic: fixture: boom in ConfigureNetwork"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
			ref := plugintest.Install(t, root, misbehavePkg, "misbehave", misbehaveConfig(tc.mode, dir))
			ref.Timeout, ref.GRPCOnly = time.Second, grpcOnly
			e, err := openEngine(t, root, ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			pids := plugintest.Processes(ref.Path)
			if len(pids) != 1 {
				t.Fatalf("plugin processes after open: %v, want one", pids)
			}
			restarts := host.Restarts()
			start := time.Now()
			_, err = e.Create(context.Background(), request("fault-1"))
			if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v (class %v)\nwant Unavailable containing %q", err, errdefs.ClassOf(err), tc.want)
			}
			t.Logf("create: %v", err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the failed create took %s", d)
			}
			assertClean(t, e, dir, 0)
			for _, pid := range pids {
				if p := plugintest.Processes(ref.Path); len(p) == 1 && p[0] == pid {
					t.Errorf("the misbehaving process %d still runs", pid)
				}
			}
			// The plugin restarts for the next run (the failed run's undo may already have
			// restarted it), and the restart is counted.
			resp, err := e.Create(context.Background(), request("ok"))
			if err != nil {
				t.Fatalf("create after the failure: %v", err)
			}
			if host.Restarts() <= restarts {
				t.Errorf("plugin restarts counted: %d before the fault, %d after; want more", restarts, host.Restarts())
			}
			if l, _ := netfile.ReadLeases(dir); len(l) != 1 || !netip.MustParsePrefix("10.77.0.0/24").Contains(l[resp.ID]) {
				t.Errorf("leases after the restart: %v, want only %s's (the failed run's lease released)", l, resp.ID)
			}
			if rec, err := e.Record(context.Background(), resp.ID); err != nil || rec.Implementations[spec.StageNetwork] != host.ImplName(ref.Name, ref.SHA256) {
				t.Errorf("recorded network implementation: %v %v", rec.Implementations, err)
			}
			if err := e.Remove(context.Background(), resp.ID, core.RemoveOptions{}); err != nil {
				t.Fatal(err)
			}
			assertClean(t, e, dir, 2)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			assertNoProcess(t, ref.Path)
		})
	}
}

// TestTransport checks which way the stage calls travel: over the fd channel when the
// plugin serves it, over gRPC when the host is told so, when the plugin predates the
// channel, and when it lists the channel without serving it (the host waits a second for
// it, warns and goes on); and that calls work every way.
func TestTransport(t *testing.T) {
	for _, tc := range []struct {
		name, fixture string
		grpcOnly      bool
		env           string
		want, warn    string
	}{
		{"served", "", false, "", "fd-channel", ""},
		{"grpc-only", "", true, "", "grpc", ""},
		{"env-grpc", "", false, "grpc", "grpc", ""},
		{"env-fd-channel", "", false, "fd-channel", "fd-channel", ""},
		{"old-plugin", "old", false, "", "grpc", ""},
		{"not-served", "silent", false, "", "grpc", "plugin lists the fd channel but does not serve it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(host.TransportEnv, tc.env)
			root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
			ref := plugintest.Install(t, root, misbehavePkg, "misbehave", misbehaveConfig("", dir))
			ref.GRPCOnly = tc.grpcOnly
			if tc.fixture != "" {
				ref.Env = []string{"FIXTURE_CHANNEL=" + tc.fixture}
			}
			var logs logBuffer
			log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
			v, err := host.New(context.Background(), spec.StageNetwork, ref, log)
			if err != nil {
				t.Fatal(err)
			}
			defer v.(core.Closer).Close()
			if l := logs.String(); !strings.Contains(l, "plugin started:") || !strings.Contains(l, "transport="+tc.want) {
				t.Errorf("log does not say transport=%s:\n%s", tc.want, l)
			}
			if warned := strings.Contains(logs.String(), "does not serve it"); warned != (tc.warn != "") || !strings.Contains(logs.String(), tc.warn) {
				t.Errorf("log should warn %q (only then):\n%s", tc.warn, logs.String())
			}
			n := v.(core.Networker)
			rec := plugintest.NetworkRecord(t)
			out, err := n.ConfigureNetwork(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if l, _ := netfile.ReadLeases(dir); len(l) != 1 || out.Networks["bridge"] == nil || l[rec.ID] != out.Networks["bridge"].IPAddress {
				t.Fatalf("lease %v, output %+v", l, out)
			}
			if err := n.Undo(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			if l, _ := netfile.ReadLeases(dir); len(l) != 0 {
				t.Fatalf("leases after undo: %v", l)
			}
		})
	}
}

// TestUndoFailsOnce makes the plugin's stage fail and its undo fail the first time: the
// run is kept for recover, and Recover then leaves nothing.
func TestUndoFailsOnce(t *testing.T) {
	needRoot(t)
	root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
	ref := plugintest.Install(t, root, misbehavePkg, "misbehave", misbehaveConfig("fail-undofail", dir))
	e, err := openEngine(t, root, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Create(context.Background(), request("fault-1"))
	if err == nil || !strings.Contains(err.Error(), "fixture: network backend unreachable") || !strings.Contains(err.Error(), "fixture: undo backend unreachable") {
		t.Fatalf("create: %v; want the stage's error and the failed undo", err)
	}
	if !errdefs.IsUnavailable(err) {
		t.Errorf("class %v, want the plugin's own Unavailable", errdefs.ClassOf(err))
	}
	if l, _ := netfile.ReadLeases(dir); len(l) != 1 {
		t.Fatalf("leases after the failed undo: %v, want the one kept for recover", l)
	}
	rep, err := e.Recover(context.Background())
	if err != nil || len(rep.Recovered) != 1 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	assertClean(t, e, dir, 0)
	e.Close()
	assertNoProcess(t, ref.Path)
}

// TestTamperedBinaryRefused changes an installed binary: the engine refuses to start it.
func TestTamperedBinaryRefused(t *testing.T) {
	root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
	ref := plugintest.Install(t, root, netfilePkg, "netfile", json.RawMessage(fmt.Sprintf(`{"dir":%q}`, dir)))
	if err := host.NewStore(root).Verify(ref.Name, ref.SHA256); err != nil {
		t.Fatalf("verify of the intact binary: %v", err)
	}
	f, err := os.OpenFile(ref.Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	if err := host.NewStore(root).Verify(ref.Name, ref.SHA256); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("store verify of the tampered binary: %v", err)
	}
	_, err = host.New(context.Background(), spec.StageNetwork, ref, nil)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "refusing to run it") || !strings.Contains(err.Error(), "expected sha256:"+ref.SHA256) {
		t.Fatalf("launch of a tampered binary: %v (class %v)", err, errdefs.ClassOf(err))
	}
	assertNoProcess(t, ref.Path)
	// A wrong expected digest is refused the same way.
	p, _ := plugintest.Build(t, netfilePkg)
	wrong := host.PluginRef{Name: "netfile", Path: p, SHA256: strings.Repeat("ab", 32)}
	if _, err := host.New(context.Background(), spec.StageNetwork, wrong, nil); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("wrong digest: %v", err)
	}
}

func TestProtocolVersionMismatch(t *testing.T) {
	root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
	ref := plugintest.Install(t, root, misbehavePkg, "misbehave", misbehaveConfig("", dir))
	ref.Env = []string{"FIXTURE_PROTOCOL=2"}
	_, err := host.New(context.Background(), spec.StageNetwork, ref, nil)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "plugin misbehave speaks plugin protocol version 2, this Slipway speaks version 1") {
		t.Fatalf("mismatch: %v (class %v)", err, errdefs.ClassOf(err))
	}
	assertNoProcess(t, ref.Path)
}

func TestStageNotServedAndBadConfig(t *testing.T) {
	root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
	ref := plugintest.Install(t, root, netfilePkg, "netfile", json.RawMessage(fmt.Sprintf(`{"dir":%q}`, dir)))
	_, err := host.New(context.Background(), spec.StageLayer, ref, nil)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "plugin netfile 0.1.0 does not serve the layer stage; it serves: network") {
		t.Fatalf("unserved stage: %v", err)
	}
	ref.Config = json.RawMessage(`{"dir":"/x","colour":"blue"}`)
	_, err = host.New(context.Background(), spec.StageNetwork, ref, nil)
	if !errdefs.IsInvalidArgument(err) || err.Error() != `plugin netfile: config: json: unknown field "colour"` {
		t.Fatalf("unknown config field: %v (class %v)", err, errdefs.ClassOf(err))
	}
	ref.Config = json.RawMessage(`{"subnet":"10.1.0.0/24"}`)
	_, err = host.New(context.Background(), spec.StageNetwork, ref, nil)
	if !errdefs.IsInvalidArgument(err) || err.Error() != `plugin netfile: config: missing required field "dir"` {
		t.Fatalf("missing required field: %v", err)
	}
	assertNoProcess(t, ref.Path)
}

// TestSharedProcessAndLogs builds the stage twice from one binary and config: one process
// serves both, its log reaches the host logger, and it stops when the last user closes.
func TestSharedProcessAndLogs(t *testing.T) {
	root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
	ref := plugintest.Install(t, root, netfilePkg, "netfile", json.RawMessage(fmt.Sprintf(`{"dir":%q,"no_sync":true}`, dir)))
	var logs logBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	a, err := host.New(context.Background(), spec.StageNetwork, ref, log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := host.New(context.Background(), spec.StageNetwork, ref, log)
	if err != nil {
		t.Fatal(err)
	}
	if p := plugintest.Processes(ref.Path); len(p) != 1 {
		t.Fatalf("processes: %v, want one shared", p)
	}
	// The plugin's stderr is copied to the host logger by a goroutine: give it a moment.
	arrived := func() bool {
		l := logs.String()
		return strings.Contains(l, "[INFO]  plugin.netfile: netfile ready:") && strings.Contains(l, " dir="+dir)
	}
	for deadline := time.Now().Add(5 * time.Second); !arrived() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !arrived() {
		t.Errorf("the plugin's log did not reach the host logger:\n%s", logs.String())
	}
	a.(core.Closer).Close()
	if p := plugintest.Processes(ref.Path); len(p) != 1 {
		t.Fatalf("processes after the first close: %v, want the shared one", p)
	}
	b.(core.Closer).Close()
	assertNoProcess(t, ref.Path)
}

// TestNoPluginOutlivesKilledEngine starts an engine process that launches a plugin, kills
// the engine with SIGKILL and checks that the plugin dies with it.
func TestNoPluginOutlivesKilledEngine(t *testing.T) {
	root, dir := plugintest.TempDir(t), plugintest.TempDir(t)
	ref := plugintest.Install(t, root, netfilePkg, "netfile", json.RawMessage(fmt.Sprintf(`{"dir":%q}`, dir)))
	b, _ := json.Marshal(ref)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HOST_TEST_ENGINE="+string(b))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 64)
	n, _ := out.Read(line)
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("engine child said %q", line[:n])
	}
	if p := plugintest.Processes(ref.Path); len(p) != 1 || p[0] != pid {
		t.Fatalf("plugin processes %v, want [%d]", p, pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	assertNoProcess(t, ref.Path)
}

// engineChild is the engine process of TestNoPluginOutlivesKilledEngine: it launches the
// plugin on a goroutine that then ends (so Pdeathsig must not hang on its thread), prints
// the plugin's pid and waits to be killed.
func engineChild() {
	var ref host.PluginRef
	if err := json.Unmarshal([]byte(os.Getenv("HOST_TEST_ENGINE")), &ref); err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := host.New(context.Background(), spec.StageNetwork, ref, nil); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}()
	<-done
	for _, pids := range host.Running() {
		fmt.Println(pids[0])
	}
	select {}
}
