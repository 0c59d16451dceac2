package local_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/steps/mkdir/local"
	"github.com/slipwayhq/slipway/steps/standard"
	"github.com/slipwayhq/slipway/volumes"
)

const volImage = "example.com/vol:1"

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to mount overlayfs snapshots (CI runs it as root)")
	}
}

// tempRoot is a state root under /var/tmp (making directories under /tmp is ten times slower).
func tempRoot(t testing.TB) string {
	dir, err := os.MkdirTemp("/var/tmp", "slipway-mkdir-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// openEngine opens an engine with the default pipeline and loads an image that declares the
// volume /data, has content there, in /opt/conf, a file at /afile and a symlink /link that
// points far above the root.
func openEngine(t *testing.T, opts ...local.Option) *core.Engine {
	t.Helper()
	needRoot(t)
	o := standard.Options(standard.Config{NoSync: true})
	o.Root = tempRoot(t)
	if len(opts) > 0 {
		p := o.Pipeline.With(local.Impl(opts...))
		o.Pipeline = &p
	}
	e, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	img := imagetest.Image{
		Tags:     []string{volImage},
		Platform: images.HostPlatform(),
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/app"}, Volumes: map[string]struct{}{"/data": {}}},
		Layers: []imagetest.Layer{{Files: []imagetest.File{
			{Path: "/bin/app", Content: []byte("app"), Mode: 0o755},
			{Path: "/data", Type: '5', Mode: 0o750, UID: 1000, GID: 1000},
			{Path: "/data/seed", Content: []byte("seed"), Mode: 0o640, UID: 1000, GID: 1000},
			{Path: "/opt/conf/app.conf", Content: []byte("conf")},
			{Path: "/afile", Content: []byte("x")},
			imagetest.Symlink("/link", "../../../../.."),
		}}},
	}
	var buf bytes.Buffer
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, img); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Images().(*images.Store).Load(context.Background(), &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	return e
}

func volStore(t *testing.T, e *core.Engine) *volumes.Store {
	t.Helper()
	s, err := volumes.Open(context.Background(), e.Env())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t *testing.T, e *core.Engine, cfg container.Config, hc container.HostConfig) (string, error) {
	t.Helper()
	cfg.Image = volImage
	resp, err := e.Create(context.Background(), spec.CreateRequest{Config: &cfg, HostConfig: &hc})
	return resp.ID, err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func noMountsUnder(t *testing.T, root string) {
	t.Helper()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), root) {
		t.Errorf("mounts left under %s", root)
	}
}

// TestVolumesThroughEngine creates containers through the real pipeline and checks the
// mount points inspect shows, the copy of the image's content into new volumes, the
// working directory, and what rm and rm -v leave.
func TestVolumesThroughEngine(t *testing.T) {
	e := openEngine(t)
	vs := volStore(t, e)
	ctx := context.Background()
	id, err := create(t, e, container.Config{WorkingDir: "/new/dir"}, container.HostConfig{
		Binds:  []string{"named:/opt/conf", "/srv/host:/host:ro", "nc:/nocopy:nocopy"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Target: "/m"}, {Type: mount.TypeTmpfs, Target: "/t"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	in, err := e.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	byDest := map[string]container.MountPoint{}
	for _, m := range in.Mounts {
		byDest[m.Destination] = m
	}
	if len(in.Mounts) != 6 {
		t.Fatalf("mounts = %+v, want 6", in.Mounts)
	}
	named := byDest["/opt/conf"]
	if want := (container.MountPoint{Type: mount.TypeVolume, Name: "named", Source: filepath.Join(e.Root(), "volumes/named/_data"),
		Destination: "/opt/conf", Driver: "local", Mode: "z", RW: true}); named != want {
		t.Errorf("named: %+v\nwant %+v", named, want)
	}
	if want := (container.MountPoint{Type: mount.TypeBind, Source: "/srv/host", Destination: "/host", Mode: "ro", RW: false,
		Propagation: mount.PropagationRPrivate}); byDest["/host"] != want {
		t.Errorf("bind: %+v\nwant %+v", byDest["/host"], want)
	}
	if want := (container.MountPoint{Type: mount.TypeTmpfs, Destination: "/t", RW: true}); byDest["/t"] != want {
		t.Errorf("tmpfs: %+v\nwant %+v", byDest["/t"], want)
	}
	anonData, anonM := byDest["/data"], byDest["/m"]
	for _, m := range []container.MountPoint{anonData, anonM} {
		if len(m.Name) != 64 || m.Driver != "local" || m.Source != filepath.Join(e.Root(), "volumes", m.Name, "_data") || !m.RW {
			t.Errorf("anonymous volume: %+v", m)
		}
	}
	if anonData.Mode != "" || anonM.Mode != "z" {
		t.Errorf("modes: image volume %q, --mount volume %q; want \"\" and \"z\" as moby", anonData.Mode, anonM.Mode)
	}
	// Copy-up: the image's content, with its modes and owners, in the new volumes.
	if got := readFile(t, filepath.Join(anonData.Source, "seed")); got != "seed" {
		t.Errorf("seed = %q", got)
	}
	fi, err := os.Stat(filepath.Join(anonData.Source, "seed"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("seed: mode %o owner %d:%d", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	if fi, err := os.Stat(anonData.Source); err != nil || fi.Mode().Perm() != 0o750 || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("volume root takes the image directory's mode and owner: %v %v", fi.Mode(), err)
	}
	if got := readFile(t, filepath.Join(named.Source, "app.conf")); got != "conf" {
		t.Errorf("app.conf = %q", got)
	}
	if ents, _ := os.ReadDir(byDest["/nocopy"].Source); len(ents) != 0 {
		t.Errorf("nocopy volume has %d entries", len(ents))
	}
	// The working directory, in the container's root filesystem.
	mnt, err := e.Mount(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "new/dir"} {
		fi, err := os.Stat(filepath.Join(mnt, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o755 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("/%s: %v owner %d:%d", p, fi.Mode(), st.Uid, st.Gid)
		}
	}
	if err := e.Unmount(ctx, id); err != nil {
		t.Fatal(err)
	}
	noMountsUnder(t, e.Root())
	if ls, _ := e.List(ctx, core.ListOptions{}); len(ls) != 1 || len(ls[0].Mounts) != 6 {
		t.Errorf("ps Mounts: %+v", ls)
	}

	// An existing volume that is not empty is not filled again.
	os.WriteFile(filepath.Join(named.Source, "mine"), []byte("mine"), 0o644)
	os.Remove(filepath.Join(named.Source, "app.conf"))
	id2, err := create(t, e, container.Config{}, container.HostConfig{Binds: []string{"named:/opt/conf"}, VolumesFrom: []string{id + ":ro"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(named.Source, "app.conf")); !os.IsNotExist(err) {
		t.Errorf("content copied into a volume that was not empty: %v", err)
	}
	in2, _ := e.Inspect(ctx, id2)
	var fromData *container.MountPoint
	for i, m := range in2.Mounts {
		if m.Destination == "/data" {
			fromData = &in2.Mounts[i]
		}
	}
	if fromData == nil || fromData.Name != anonData.Name || fromData.RW || fromData.Mode != "" {
		t.Errorf("--volumes-from %s:ro: /data = %+v, want %s read-only", id, fromData, anonData.Name)
	}
	if len(in2.Mounts) != 6 {
		t.Errorf("volumes-from mounts: %d, want 6 (5 of %s with /opt/conf replaced by the bind)", len(in2.Mounts), id)
	}

	// rm -v of id keeps the anonymous volumes id2 still uses (--volumes-from); rm -v of id2
	// then removes them, and no removal removes a named volume.
	if err := e.Remove(ctx, id, core.RemoveOptions{RemoveVolumes: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{anonData.Name, anonM.Name} {
		if _, err := vs.Get(n); err != nil {
			t.Errorf("rm -v removed an anonymous volume another container uses: %v", err)
		}
	}
	if err := e.Remove(ctx, id2, core.RemoveOptions{RemoveVolumes: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{anonData.Name, anonM.Name} {
		if _, err := vs.Get(n); !errdefs.IsNotFound(err) {
			t.Errorf("rm -v kept the anonymous volume %s: %v", n, err)
		}
	}
	for _, n := range []string{"named", "nc"} {
		if _, err := vs.Get(n); err != nil {
			t.Errorf("rm -v removed the named volume %s: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(e.Root(), "containers", id)); !os.IsNotExist(err) {
		t.Errorf("container root left: %v", err)
	}
}

// TestWorkingDirSymlinkStaysInside checks that a working directory through a symlink that
// points above the root is made inside the root filesystem, never on the host.
func TestWorkingDirSymlinkStaysInside(t *testing.T) {
	e := openEngine(t)
	leaf := "slipway-escape-" + core.NewID()[:12]
	id, err := create(t, e, container.Config{WorkingDir: "/link/" + leaf}, container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/data"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/" + leaf); !os.IsNotExist(err) {
		os.Remove("/" + leaf)
		t.Fatalf("the working directory escaped to the host: %v", err)
	}
	mnt, err := e.Mount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(mnt, leaf)); err != nil || !fi.IsDir() {
		t.Errorf("working directory not made at the root of the container: %v", err)
	}
	if err := e.Unmount(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := create(t, e, container.Config{WorkingDir: "/afile/sub"}, container.HostConfig{}); err == nil ||
		err.Error() != "Cannot mkdir: /afile/sub is not a directory" {
		t.Errorf("working directory below a file: %v", err)
	}
	noMountsUnder(t, e.Root())
}

// TestWorkingDirOwnedByRemappedRoot: with user namespaces remapped, the working directories
// made inside the root filesystem belong to the remapped root, as moby makes them.
func TestWorkingDirOwnedByRemappedRoot(t *testing.T) {
	const uid, gid = 100000, 100001
	e := openEngine(t, local.WithRemappedRoot(gid), local.WithRemappedRootUID(uid))
	id, err := create(t, e, container.Config{WorkingDir: "/srv/www"}, container.HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mnt, err := e.Mount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unmount(context.Background(), id)
	for _, p := range []string{"srv", "srv/www"} {
		fi, err := os.Stat(filepath.Join(mnt, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != 0o755 {
			t.Errorf("/%s: owner %d:%d mode %v, want %d:%d 0755", p, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
		}
	}
}

// TestMountMessages checks moby's messages for the mounts the stage refuses, and that a
// refused create leaves no volume behind.
func TestMountMessages(t *testing.T) {
	e := openEngine(t)
	vs := volStore(t, e)
	for _, tc := range []struct {
		name  string
		hc    container.HostConfig
		class errdefs.Class
		want  string
	}{
		{"BindSourceMissing", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/no/such/dir", Target: "/x"}}},
			errdefs.InvalidArgumentClass, `invalid mount config for type "bind": bind source path does not exist: /no/such/dir`},
		{"DuplicateMounts", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "v1", Target: "/x"}, {Type: mount.TypeVolume, Source: "v2", Target: "/x"}}},
			errdefs.InvalidArgumentClass, "Duplicate mount point: /x"},
		{"DuplicateBindAndMount", container.HostConfig{Binds: []string{"v1:/x"}, Mounts: []mount.Mount{{Type: mount.TypeVolume, Target: "/x/"}}},
			errdefs.InvalidArgumentClass, "Duplicate mount point: /x"},
		{"BadName", container.HostConfig{Binds: []string{"a b:/x"}},
			errdefs.InvalidArgumentClass, `create a b: "a b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`},
		{"ShortName", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "a", Target: "/x"}}},
			errdefs.InvalidArgumentClass, "create a: volume name is too short, names should be at least two alphanumeric characters"},
		{"VolumesFromMissing", container.HostConfig{Binds: []string{"v1:/x"}, VolumesFrom: []string{"nosuch"}},
			errdefs.InvalidArgumentClass, "No such container: nosuch"},
		{"VolumesFromBadMode", container.HostConfig{VolumesFrom: []string{"x:shared"}},
			errdefs.InvalidArgumentClass, "invalid mode: shared"},
		{"UnknownDriver", container.HostConfig{Binds: []string{"v1:/x"}, VolumeDriver: "flocker"},
			errdefs.NotFoundClass, `create v1: error looking up volume plugin flocker: plugin "flocker" not found`},
		{"ImageVolumeOverFile", container.HostConfig{},
			errdefs.InvalidArgumentClass, "cannot mount volume over existing file, file exists "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := container.Config{}
			if tc.name == "ImageVolumeOverFile" {
				cfg.Volumes = map[string]struct{}{"/afile": {}}
			}
			_, err := create(t, e, cfg, tc.hc)
			if err == nil {
				t.Fatal("create succeeded")
			}
			if errdefs.ClassOf(err) != tc.class || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v (%v)\nwant %v %s", err, errdefs.ClassOf(err), tc.class, tc.want)
			}
			if l := vs.List(); len(l) != 0 {
				t.Errorf("volumes left by a refused create: %+v", l)
			}
			if ents, _ := os.ReadDir(filepath.Join(e.Root(), "volumes")); len(ents) != 0 {
				t.Errorf("volume directories left: %d", len(ents))
			}
			noMountsUnder(t, e.Root())
		})
	}
}

// stage builds the mkdir stage in a fresh engine environment.
func stage(t *testing.T) (*local.DirMaker, core.Env) {
	env, _ := coretest.NewEnvWith(t, core.Options{Root: tempRoot(t)})
	return coretest.Build[*local.DirMaker](t, env, local.Impl()), env
}

// volRec is a create that uses the named volume name and an anonymous one, both without
// copy, so the stage does not need a root filesystem.
func volRec(name string) *spec.Record {
	return &spec.Record{ID: core.NewID(), Merged: &spec.Merged{Config: &container.Config{}, HostConfig: &container.HostConfig{
		Binds:  []string{name + ":/data:nocopy"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Target: "/anon", VolumeOptions: &mount.VolumeOptions{NoCopy: true}}},
	}}}
}

func anonOf(t *testing.T, dirs *spec.Dirs) string {
	t.Helper()
	for _, m := range dirs.Mounts {
		if m.Destination == "/anon" {
			return m.Name
		}
	}
	t.Fatal("no /anon mount")
	return ""
}

// TestUndoByCause checks what each kind of undo does with the volumes.
func TestUndoByCause(t *testing.T) {
	for _, tc := range []struct {
		name                string
		cause               core.UndoCause
		bareRecord          bool
		keepNamed, keepAnon bool
	}{
		{"Rollback", core.UndoCause{}, false, false, false},
		{"RollbackAfterCrash", core.UndoCause{}, true, false, false},
		{"Remove", core.UndoCause{Remove: true}, false, true, true},
		{"RemoveVolumes", core.UndoCause{Remove: true, RemoveVolumes: true}, false, true, false},
		{"RemoveVolumesAfterCrash", core.UndoCause{Remove: true, RemoveVolumes: true}, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, env := stage(t)
			rec := volRec("named")
			dirs, err := d.MakeDirs(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			anon := anonOf(t, dirs)
			rec.Dirs = dirs
			if tc.bareRecord {
				// After a crash: a new store rebuilt from the same database, and only the ID.
				vs, err := volumes.New(context.Background(), env.Root, env.DB, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				d, err = local.New(filepath.Join(env.Root, "containers"), local.WithVolumes(vs))
				if err != nil {
					t.Fatal(err)
				}
				rec = &spec.Record{ID: rec.ID}
			}
			if err := d.Undo(core.WithUndoCause(context.Background(), tc.cause), rec); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name string
				keep bool
			}{{"named", tc.keepNamed}, {anon, tc.keepAnon}} {
				_, err := os.Stat(filepath.Join(env.Root, "volumes", c.name))
				if c.keep != (err == nil) {
					t.Errorf("volume %s: kept %v, want %v (%v)", c.name, err == nil, c.keep, err)
				}
			}
			if _, err := os.Stat(filepath.Join(env.Root, "containers", rec.ID)); !os.IsNotExist(err) {
				t.Errorf("container root left: %v", err)
			}
		})
	}
}

// TestRollbackKeepsVolumeOthersUse: two creates use -v shared:/data; the first makes the
// volume and fails, the second uses it: the volume stays for the second, and goes with the
// second's rollback.
func TestRollbackKeepsVolumeOthersUse(t *testing.T) {
	d, env := stage(t)
	vs, err := volumes.Open(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := volRec("shared"), volRec("shared")
	if _, err := d.MakeDirs(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.MakeDirs(ctx, b); err != nil {
		t.Fatal(err)
	}
	err = vs.Remove(ctx, "shared")
	if want := "remove shared: volume is in use - [" + strings.Join(sorted(a.ID, b.ID), " ") + "]"; !errdefs.IsConflict(err) || err.Error() != want {
		t.Errorf("remove in use: %v\nwant %s", err, want)
	}
	if err := d.Undo(ctx, a); err != nil {
		t.Fatal(err)
	}
	v, err := vs.Get("shared")
	if err != nil {
		t.Fatalf("the first create's rollback removed a volume the second uses: %v", err)
	}
	if v.CreatedBy != b.ID {
		t.Errorf("CreatedBy = %s, want the user it was handed to, %s", v.CreatedBy, b.ID)
	}
	if err := d.Undo(ctx, &spec.Record{ID: b.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := vs.Get("shared"); !errdefs.IsNotFound(err) {
		t.Errorf("volume after both rollbacks: %v", err)
	}
}

// TestParallelSharedVolume races creates and rollbacks of one named volume: whenever a
// create has succeeded and not been undone, its volume is there.
func TestParallelSharedVolume(t *testing.T) {
	d, env := stage(t)
	vs, _ := volumes.Open(context.Background(), env)
	ctx := context.Background()
	keeper := volRec("race")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rec := volRec("race")
			if i == 7 {
				rec = keeper
			}
			if _, err := d.MakeDirs(ctx, rec); err != nil {
				errs <- err
				return
			}
			if i != 7 {
				errs <- d.Undo(ctx, rec)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if u := vs.Users("race"); len(u) != 1 || u[0] != keeper.ID {
		t.Errorf("users = %v, want [%s]", u, keeper.ID)
	}
	if _, err := os.Stat(filepath.Join(env.Root, "volumes/race/_data")); err != nil {
		t.Errorf("the volume the surviving create uses is gone: %v", err)
	}
	if err := d.Undo(ctx, keeper); err != nil {
		t.Fatal(err)
	}
	if l := vs.List(); len(l) != 0 {
		t.Errorf("volumes left: %+v", l)
	}
}

func sorted(a, b string) []string {
	if a > b {
		return []string{b, a}
	}
	return []string{a, b}
}
