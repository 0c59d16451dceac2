package standard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/steps/standard"
)

const testImage = "example.com/app:1"

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for overlayfs snapshots and mounts (CI runs it as root)")
	}
}

// open opens an engine on a fresh root with p (the default pipeline when nil) and loads the
// test image.
func open(t testing.TB, p *core.Pipeline, noSync bool) *core.Engine {
	t.Helper()
	o := standard.Options(standard.Config{NoSync: noSync})
	if p != nil {
		o.Pipeline = p
	}
	o.Root, o.NoSync = tempRoot(t), noSync
	e, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var buf bytes.Buffer
	img := imagetest.Image{
		Tags:     []string{testImage},
		Platform: images.HostPlatform(),
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/app"}, Env: []string{"A=1"}},
		Layers: []imagetest.Layer{
			{Files: []imagetest.File{{Path: "/bin/app", Content: []byte("app"), Mode: 0o755}, {Path: "/etc/a", Content: []byte("a")}}},
			{Files: []imagetest.File{imagetest.Whiteout("/etc/a"), {Path: "/etc/b", Content: []byte("b")}}},
		},
	}
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, img); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Images().(*images.Store).Load(context.Background(), &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// tempRoot returns a state root that is removed when the test ends, unless
// $SLIPWAY_TEST_KEEP is set (for benchmarks: deleting thousands of directories slows the
// mkdirs of the next run for minutes on ext4 without a journal, see the README). It lies under
// $SLIPWAY_TEST_ROOT, or /var/tmp: on the machines we measured, making a directory under /tmp
// costs ten times what it costs elsewhere on the same filesystem (about 1 ms against 0.08 ms),
// which would swamp what the benchmarks measure; a real state root is under /var/lib.
func tempRoot(t testing.TB) string {
	base := os.Getenv("SLIPWAY_TEST_ROOT")
	if base == "" {
		base = "/var/tmp"
	}
	dir, err := os.MkdirTemp(base, "slipway-test-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SLIPWAY_TEST_KEEP") == "" {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}

func request(name, ip string) spec.CreateRequest {
	r := spec.CreateRequest{Name: name, Config: &container.Config{Image: testImage}, HostConfig: &container.HostConfig{}}
	if ip != "" {
		r.HostConfig.NetworkMode = "slipway"
		r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"slipway": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr(ip)}},
		}}
	}
	return r
}

// snapshotDirs lists the snapshot directories under root.
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

// settledSnapshotDirs returns the snapshot directories under root once there are want of
// them, or after 10 s: the layer stage removes a removed container's snapshot after a
// pause of 200 ms.
func settledSnapshotDirs(root string, want int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := snapshotDirs(root)
		if len(s) == want || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertClean checks that nothing of any container is left under root beyond the shared
// image layers counted in base. It closes e: the layer stage's pool of snapshots made
// ahead is removed then, and must leave nothing either.
func assertClean(t *testing.T, e *core.Engine, base int) {
	t.Helper()
	root := e.Root()
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("container directories left: %d", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "volumes")); len(ents) != 0 {
		t.Errorf("volumes left: %d", len(ents))
	}
	list, err := e.List(context.Background(), core.ListOptions{All: true})
	if err != nil || len(list) != 0 {
		t.Errorf("containers left: %v %v", list, err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	// A removed container's snapshot goes once the layer stage pauses (its reaper), or at
	// the latest when it closes.
	if s := settledSnapshotDirs(root, base); len(s) != base {
		t.Errorf("snapshots: %d, want %d shared ones: %v", len(s), base, s)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), root) {
		t.Errorf("mounts left under %s", root)
	}
}

// TestFaultInjectionRealStages makes each real stage fail after doing its work — by
// error, panic and cancellation — and checks that nothing is left: no directory, snapshot,
// mount, lease, name or record.
func TestFaultInjectionRealStages(t *testing.T) {
	needRoot(t)
	points := []struct {
		stage spec.Stage
		call  string
	}{
		{spec.StageVerify, ""}, {spec.StageImage, ""}, {spec.StageMerge, ""},
		{spec.StageRegister, "reserve"}, {spec.StageSecurity, ""}, {spec.StageNetwork, ""},
		{spec.StageLayer, ""}, {spec.StageMkdir, ""}, {spec.StageRegister, "register"},
	}
	faults := []struct {
		name  string
		f     coretest.Fault
		class errdefs.Class
	}{
		{"error", coretest.FailCall, errdefs.InternalClass},
		{"panic", coretest.PanicCall, errdefs.InternalClass},
		{"cancel", coretest.CancelCall, errdefs.CanceledClass},
	}
	for _, pt := range points {
		for _, fa := range faults {
			name := string(pt.stage)
			if pt.call != "" {
				name = pt.call
			}
			t.Run(name+"/"+fa.name, func(t *testing.T) {
				p := standard.Pipeline(standard.Config{})
				p.Stages[pt.stage] = coretest.Faulty(p.Stages[pt.stage], fa.f, pt.call)
				e := open(t, p, true)
				ctx, cancel := coretest.CancelContext(context.Background())
				defer cancel()
				// A new named volume and an anonymous one: a failed create removes both.
				req := request("victim", "172.30.0.77")
				req.HostConfig.Binds = []string{"victimvol:/data", "/anon"}
				_, err := e.Create(ctx, req)
				if err == nil {
					t.Fatal("create succeeded, want failure")
				}
				if errdefs.ClassOf(err) != fa.class {
					t.Errorf("class %v, want %v: %v", errdefs.ClassOf(err), fa.class, err)
				}
				// Once the layer stage ran, the image's two layers and its init layer stay:
				// they are shared by every container of the image.
				base := 0
				if pt.stage == spec.StageLayer || pt.stage == spec.StageMkdir || pt.call == "register" {
					base = 3
				}
				assertClean(t, e, base)
			})
		}
	}
}

// TestFaultAfterASnapshotFromThePool makes the stages after the layer stage fail, by error
// and by cancellation, once the layer stage's pool is filled, so that the failed create took a
// snapshot made ahead: its undo must remove that snapshot (keyed spare-*), and nothing is left.
func TestFaultAfterASnapshotFromThePool(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name  string
		stage spec.Stage
		f     coretest.Fault
		class errdefs.Class
	}{
		{"mkdir fails", spec.StageMkdir, coretest.FailCall, errdefs.InternalClass},
		{"canceled during the layer stage", spec.StageLayer, coretest.CancelCall, errdefs.CanceledClass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := standard.Pipeline(standard.Config{})
			p.Stages[tc.stage] = coretest.Faulty(p.Stages[tc.stage], tc.f, "")
			e := open(t, p, true)
			// Two failed creates of the image start the pool (each undid its own snapshot).
			for range 2 {
				ctx, cancel := coretest.CancelContext(context.Background())
				_, err := e.Create(ctx, request("", ""))
				cancel()
				if errdefs.ClassOf(err) != tc.class {
					t.Fatalf("create: %v, want class %v", err, tc.class)
				}
			}
			// The image's two layers and init layer, and the pool's 64, made in one
			// transaction (their directories appear one by one in it).
			const full = 3 + 64
			deadline := time.Now().Add(10 * time.Second)
			for len(snapshotDirs(e.Root())) < full && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			before := len(snapshotDirs(e.Root()))
			if before != full {
				t.Fatalf("%d snapshot directories, want %d: the pool did not fill", before, full)
			}
			// A failed create that took a snapshot from the pool removes it: one directory
			// fewer. (Until the pool's commit is done, a create prepares its own snapshot,
			// and its undo leaves the count as it was: try again a little later.)
			after := before
			for try := 0; try < 50 && after == before; try++ {
				time.Sleep(time.Duration(try) * 10 * time.Millisecond)
				ctx, cancel := coretest.CancelContext(context.Background())
				_, err := e.Create(ctx, request(fmt.Sprintf("victim%d", try), ""))
				cancel()
				if errdefs.ClassOf(err) != tc.class {
					t.Fatalf("create: %v, want class %v", err, tc.class)
				}
				after = len(snapshotDirs(e.Root()))
			}
			if after != before-1 {
				t.Errorf("%d snapshot directories after the failed creates, want %d: the snapshot taken from the pool is left", after, before-1)
			}
			// The pool's other snapshots go when the engine closes.
			assertClean(t, e, 3)
		})
	}
}

// TestNameAndAddressFreedAfterFailure checks that a failed create releases the name and the
// address it held, by creating with the same ones again through a healthy pipeline.
func TestNameAndAddressFreedAfterFailure(t *testing.T) {
	needRoot(t)
	p := standard.Pipeline(standard.Config{})
	p.Stages[spec.StageMkdir] = coretest.Faulty(p.Stages[spec.StageMkdir], coretest.FailCall, "")
	e := open(t, p, true)
	if _, err := e.Create(context.Background(), request("victim", "172.30.0.77")); err == nil {
		t.Fatal("create with a failing mkdir succeeded")
	}
	e.Close()
	o := standard.Options(standard.Config{})
	o.Root = e.Root()
	e2, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := e2.Create(context.Background(), request("victim", "172.30.0.77")); err != nil {
		t.Fatalf("same name and address after the failure: %v", err)
	}
}

func TestParallelCreatesReal(t *testing.T) {
	needRoot(t)
	e := open(t, nil, true)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Create(context.Background(), request(fmt.Sprintf("c%03d", i), ""))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, _ := e.List(context.Background(), core.ListOptions{})
	if len(list) != 200 {
		t.Fatalf("%d containers, want 200", len(list))
	}
	addrs := map[netip.Addr]bool{}
	for _, c := range list {
		ip := c.NetworkSettings.Networks["bridge"].IPAddress
		if addrs[ip] {
			t.Fatalf("address %s given twice", ip)
		}
		addrs[ip] = true
	}
	// And remove them all in parallel.
	errs = make(chan error, 200)
	for _, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.Remove(context.Background(), c.ID, core.RemoveOptions{})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	assertClean(t, e, 3)
}

func TestParallelSameNameReal(t *testing.T) {
	needRoot(t)
	e := open(t, nil, true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, conflict := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Create(context.Background(), request("same", ""))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if errdefs.IsConflict(err) {
				conflict++
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflict != 49 {
		t.Fatalf("%d created, %d conflicts; want 1 and 49", ok, conflict)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.Root(), "containers")); len(ents) != 1 {
		t.Fatalf("%d container directories, want 1", len(ents))
	}
}

// TestImageDeletePrunesLayers deletes the image of a removed container and checks that
// Engine.PruneLayers then removes its unpacked layers and init layer, so that deleting
// every image leaves no snapshot; while a container uses the image, nothing is pruned.
func TestImageDeletePrunesLayers(t *testing.T) {
	needRoot(t)
	e := open(t, nil, true)
	ctx := context.Background()
	r, err := e.Create(ctx, request("user", ""))
	if err != nil {
		t.Fatal(err)
	}
	layers := len(snapshotDirs(e.Root()))
	if layers < 4 { // two layers, the init layer, the container's
		t.Fatalf("snapshots after a create: %v", snapshotDirs(e.Root()))
	}
	if removed, err := e.PruneLayers(ctx); err != nil || len(removed) != 0 {
		t.Fatalf("prune while the image exists: %v %v", removed, err)
	}
	if err := e.Remove(ctx, r.ID, core.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	st := e.Images().(*images.Store)
	if _, err := st.Delete(ctx, testImage, e.ImageUser); err != nil {
		t.Fatal(err)
	}
	removed, err := e.PruneLayers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Errorf("pruned %v, want the two layers and the init layer", removed)
	}
	if left := snapshotDirs(e.Root()); len(left) != 0 {
		t.Errorf("snapshot directories left after the image was deleted: %v", left)
	}
}

// TestRecordSurvivesReopen checks that a record with most of what a docker create can set
// is the same after the engine reopened, read back from slipway.db: records are stored
// without their zero fields, and reading them must give the record that was created.
func TestRecordSurvivesReopen(t *testing.T) {
	needRoot(t)
	e := open(t, nil, false)
	ctx := context.Background()
	var body container.CreateRequest
	if err := json.Unmarshal([]byte(`{"Image":"`+testImage+`","Hostname":"h","User":"1000:1000",
		"Env":["A=1","EMPTY="],"Cmd":["--serve"],"Entrypoint":["/bin/app"],"WorkingDir":"/srv",
		"Labels":{"tier":"front","empty":""},"ExposedPorts":{"80/tcp":{},"53/udp":{}},"StopSignal":"SIGINT",
		"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"Volumes":{"/anon":{}},
		"HostConfig":{"Binds":["vol:/data:ro"],"NetworkMode":"slipway","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]},
		"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"CapAdd":["NET_ADMIN"],"Dns":["1.1.1.1"],
		"ExtraHosts":["db:10.0.0.2"],"Memory":67108864,"Tmpfs":{"/run":"size=1m"},"ReadonlyRootfs":true,
		"SecurityOpt":["no-new-privileges"],"Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}]},
		"NetworkingConfig":{"EndpointsConfig":{"slipway":{"IPAMConfig":{"IPv4Address":"172.30.0.31"},"Aliases":["web"]}}}}`), &body); err != nil {
		t.Fatal(err)
	}
	r, err := e.Create(ctx, spec.CreateRequest{Name: "rich", Config: body.Config, HostConfig: body.HostConfig, NetworkingConfig: body.NetworkingConfig})
	if err != nil {
		t.Fatal(err)
	}
	before, err := e.Record(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	inspected, err := e.Inspect(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	root := e.Root()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	o := standard.Options(standard.Config{})
	o.Root = root
	e2, err := core.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	after, err := e2.Record(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		b, _ := json.MarshalIndent(before, "", " ")
		a, _ := json.MarshalIndent(after, "", " ")
		t.Errorf("record after reopen differs:\nbefore %s\nafter %s", b, a)
	}
	inspectedAfter, err := e2.Inspect(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inspected, inspectedAfter) {
		t.Errorf("inspect after reopen differs:\nbefore %+v\nafter %+v", inspected, inspectedAfter)
	}
}
