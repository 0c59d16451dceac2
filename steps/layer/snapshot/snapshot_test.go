package snapshot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/go-digest"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// twoLayers is an image whose second layer whites out a file and makes a directory opaque.
func twoLayers(t *testing.T, s *blobStore) *spec.Image {
	base := layerTar(t,
		dir("bin/"), file("bin/sh", "#!shell"),
		dir("etc/"), file("etc/passwd", "root:x:0:0"), file("etc/hosts", "127.0.0.1 image"),
		file("etc/mtab", "not a link"), symlink("etc/hostname", "/nowhere"),
		dir("data/"), file("data/a", "a"), file("data/b", "b"), dir("data/sub/"), file("data/sub/deep", "d"),
		file("gone", "to be whited out"), file("keep", "v1"),
	)
	top := layerTar(t,
		file(".wh.gone", ""),
		dir("data/"), file("data/.wh..wh..opq", ""), file("data/c", "c"),
		file("keep", "v2"),
	)
	return s.image(t, base, top)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// mountAt mounts fs with the mounts the stage returned, as a runtime would, at a temp dir.
func mountAt(t *testing.T, fs *spec.RootFS) string {
	t.Helper()
	target := t.TempDir()
	var ms []mount.Mount
	for _, m := range fs.Mounts {
		ms = append(ms, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if err := mount.All(ms, target); err != nil {
		t.Fatalf("mount %+v: %v", fs.Mounts, err)
	}
	t.Cleanup(func() {
		if err := mount.UnmountAll(target, 0); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
	return target
}

func prepare(t *testing.T, l *Layerer, img *spec.Image) *spec.Record {
	t.Helper()
	rec := &spec.Record{ID: newID(t), Image: img}
	fs, err := l.PrepareRootFS(context.Background(), rec)
	if err != nil {
		t.Fatalf("PrepareRootFS: %v", err)
	}
	rec.RootFS = fs
	return rec
}

// snapshotNames lists the snapshots of the stage's driver by kind.
func snapshotNames(t *testing.T, l *Layerer) (committed, active []string) {
	t.Helper()
	err := l.main.sn.Walk(context.Background(), func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindCommitted {
			committed = append(committed, info.Name)
		} else {
			active = append(active, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return committed, active
}

func overlayKernel() bool {
	b, err := os.ReadFile("/proc/filesystems")
	return err == nil && bytes.Contains(b, []byte("\toverlay\n"))
}

func TestAutoChoosesOverlayfs(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	l := open(t, root, newBlobStore(), DriverAuto)
	supported := overlayutils.Supported(filepath.Join(t.TempDir(), "probe")) == nil
	switch {
	case supported && l.Driver() != DriverOverlay:
		t.Fatalf("driver = %q, want %q on a host that supports overlayfs", l.Driver(), DriverOverlay)
	case !supported && overlayKernel():
		t.Fatalf("the kernel has overlayfs but overlayutils.Supported refuses it here")
	case !supported && l.Driver() != DriverNative:
		t.Fatalf("driver = %q, want %q without overlayfs", l.Driver(), DriverNative)
	}
	s := newBlobStore()
	l2 := open(t, t.TempDir(), s, DriverNative)
	if l2.Driver() != DriverNative {
		t.Fatalf("forced native: driver = %q", l2.Driver())
	}
	rec := prepare(t, l2, s.image(t, layerTar(t, file("x", "x"))))
	if rec.RootFS.Driver != DriverNative {
		t.Fatalf("RootFS.Driver = %q, want native", rec.RootFS.Driver)
	}
	if _, err := New(context.Background(), core.Env{Root: t.TempDir()}, WithSnapshotter("zfs")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown snapshotter: err = %v, want InvalidArgument", err)
	}
}

func TestImplBuildsALayerer(t *testing.T) {
	needRoot(t)
	impl := Impl(WithSnapshotter(DriverNative))
	if impl.Stage != spec.StageLayer || impl.Name != "snapshot" {
		t.Fatalf("Impl = %s/%s", impl.Stage, impl.Name)
	}
	v, err := impl.New(context.Background(), core.Env{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := v.(core.Layerer)
	if !ok {
		t.Fatalf("%T is not a core.Layerer", v)
	}
	if err := l.(core.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PrepareRootFS(context.Background(), &spec.Record{ID: newID(t), Image: &spec.Image{}}); !errdefs.IsUnavailable(err) {
		t.Fatalf("after Close: err = %v, want Unavailable", err)
	}
}

func TestUnpackWhiteoutsAndInitLayer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		img := twoLayers(t, s)
		rec := prepare(t, l, img)
		fs := rec.RootFS

		if fs.Driver != l.Driver() || fs.Key != rec.ID || len(fs.Mounts) == 0 {
			t.Fatalf("RootFS = %+v", fs)
		}
		switch fs.Driver {
		case DriverOverlay:
			for _, k := range []string{"LowerDir", "UpperDir", "WorkDir", "MergedDir"} {
				if fs.Data[k] == "" {
					t.Errorf("Data[%s] is empty: %v", k, fs.Data)
				}
			}
			if n := len(strings.Split(fs.Data["LowerDir"], ":")); n != 3 {
				t.Errorf("LowerDir has %d dirs, want 3 (init + 2 layers): %s", n, fs.Data["LowerDir"])
			}
			if fs.Data["MergedDir"] != l.mountPath(rec.ID) {
				t.Errorf("MergedDir = %s, want %s", fs.Data["MergedDir"], l.mountPath(rec.ID))
			}
		case DriverNative:
			if fs.Data["Dir"] == "" || fs.Data["Dir"] != fs.Mounts[0].Source {
				t.Errorf("Data = %v, want Dir = %s", fs.Data, fs.Mounts[0].Source)
			}
		}

		root := mountAt(t, fs)
		if got := readFile(t, filepath.Join(root, "bin/sh")); got != "#!shell" {
			t.Errorf("bin/sh = %q", got)
		}
		if got := readFile(t, filepath.Join(root, "keep")); got != "v2" {
			t.Errorf("keep = %q, want v2 from the top layer", got)
		}
		if _, err := os.Lstat(filepath.Join(root, "gone")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("whited-out file: Lstat err = %v, want not exist", err)
		}
		ents, err := os.ReadDir(filepath.Join(root, "data"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"c"}) {
			t.Errorf("opaque data/ holds %v, want [c]", names)
		}
		if got := readFile(t, filepath.Join(root, "etc/passwd")); got != "root:x:0:0" {
			t.Errorf("etc/passwd = %q", got)
		}

		// The init layer.
		for _, p := range []string{".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console"} {
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil {
				t.Errorf("init file %s: %v", p, err)
				continue
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 || fi.Size() != 0 {
				t.Errorf("init file %s: mode %v size %d, want empty regular 0755", p, fi.Mode(), fi.Size())
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
				t.Errorf("init file %s owned by %d:%d, want root", p, st.Uid, st.Gid)
			}
		}
		for _, p := range []string{"dev/pts", "dev/shm", "proc", "sys"} {
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("init dir %s: %v %v, want dir 0755", p, fi, err)
			}
		}
		if link, err := os.Readlink(filepath.Join(root, "etc/mtab")); err != nil || link != "/proc/mounts" {
			t.Errorf("etc/mtab -> %q (%v), want /proc/mounts", link, err)
		}

		// The container's layer is its own: a write does not reach a second container.
		if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		rec2 := prepare(t, l, img)
		root2 := mountAt(t, rec2.RootFS)
		if got := readFile(t, filepath.Join(root2, "etc/hosts")); got != "" {
			t.Errorf("second container sees etc/hosts = %q, want empty", got)
		}

		// One init layer for the image, shared; no work left over.
		committed, active := snapshotNames(t, l)
		slices.Sort(committed)
		want := []string{img.ChainID, initKey(img.ChainID), img.DiffIDs[0]}
		slices.Sort(want)
		if !slices.Equal(committed, want) {
			t.Errorf("committed snapshots = %v, want %v", committed, want)
		}
		slices.Sort(active)
		wantActive := []string{rec.ID, rec2.ID}
		slices.Sort(wantActive)
		if !slices.Equal(active, wantActive) {
			t.Errorf("active snapshots = %v, want %v", active, wantActive)
		}
		info, err := l.main.sn.Stat(context.Background(), rec.ID)
		if err != nil || info.Parent != initKey(img.ChainID) {
			t.Errorf("container snapshot parent = %q (%v), want the init layer", info.Parent, err)
		}
	})
}

func TestImageWithoutLayers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		img := s.image(t)
		rec := prepare(t, l, img)
		info, err := l.main.sn.Stat(context.Background(), initEmpty)
		if err != nil || info.Parent != "" || info.Kind != snapshots.KindCommitted {
			t.Fatalf("init layer: %+v, %v; want committed without parent", info, err)
		}
		root := mountAt(t, rec.RootFS)
		if link, err := os.Readlink(filepath.Join(root, "etc/mtab")); err != nil || link != "/proc/mounts" {
			t.Errorf("etc/mtab -> %q (%v)", link, err)
		}
		if fi, err := os.Stat(filepath.Join(root, "etc")); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("etc: %v %v, want a new dir 0755", fi, err)
		}
	})
}

func TestDiffIDMismatchCommitsNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		good := layerTar(t, file("a", "a"))
		bad := layerTar(t, file("b", "b"))
		img := s.image(t, good, bad)
		// Claim another diff ID for the second layer, with a consistent chain.
		lying := s.image(t, good, layerTar(t, file("b", "other")))
		img.DiffIDs[1] = lying.DiffIDs[1]
		img.ChainID = lying.ChainID

		for i := 0; i < 2; i++ { // a failure is not remembered as a success
			_, err := l.PrepareRootFS(context.Background(), &spec.Record{ID: newID(t), Image: img})
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "does not match its diff ID") {
				t.Fatalf("err = %v, want InvalidArgument diff ID mismatch", err)
			}
		}
		committed, active := snapshotNames(t, l)
		if !slices.Equal(committed, []string{img.DiffIDs[0]}) || len(active) != 0 {
			t.Fatalf("after mismatch: committed %v active %v, want only the good first layer", committed, active)
		}

		// A mismatch in the only layer leaves nothing at all.
		s2 := newBlobStore()
		l2 := open(t, t.TempDir(), s2, drv)
		one := s2.image(t, good)
		one.DiffIDs[0] = lying.DiffIDs[1]
		one.ChainID = one.DiffIDs[0]
		if _, err := l2.PrepareRootFS(context.Background(), &spec.Record{ID: newID(t), Image: one}); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("err = %v, want InvalidArgument", err)
		}
		if committed, active := snapshotNames(t, l2); len(committed)+len(active) != 0 {
			t.Fatalf("snapshots left: %v %v", committed, active)
		}
		if ents, _ := os.ReadDir(filepath.Join(l2.main.root, "snapshots")); len(ents) != 0 {
			t.Errorf("snapshot directories left: %v", ents)
		}
	})
}

func TestBadImagesRefused(t *testing.T) {
	needRoot(t)
	s := newBlobStore()
	l := open(t, t.TempDir(), s, DriverNative)
	img := s.image(t, layerTar(t, file("a", "a")))
	cases := map[string]func(*spec.Image){
		"chain ID":     func(i *spec.Image) { i.ChainID = "sha256:" + strings.Repeat("0", 64) },
		"counts":       func(i *spec.Image) { i.DiffIDs = nil },
		"bad diff ID":  func(i *spec.Image) { i.DiffIDs = []string{"nope"}; i.ChainID = "nope" },
		"missing blob": nil,
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			bad := *img
			bad.DiffIDs = slices.Clone(img.DiffIDs)
			bad.Layers = slices.Clone(img.Layers)
			var want func(error) bool = errdefs.IsInvalidArgument
			if f != nil {
				f(&bad)
			} else {
				bad.Layers[0].Digest = digest.Digest("sha256:" + strings.Repeat("1", 64))
				want = errdefs.IsNotFound
			}
			if _, err := l.PrepareRootFS(context.Background(), &spec.Record{ID: newID(t), Image: &bad}); !want(err) {
				t.Fatalf("err = %v (class %v)", err, errdefs.ClassOf(err))
			}
		})
	}
	if committed, active := snapshotNames(t, l); len(committed)+len(active) != 0 {
		t.Fatalf("snapshots left: %v %v", committed, active)
	}
	rec := prepare(t, l, img)
	if _, err := l.PrepareRootFS(context.Background(), &spec.Record{ID: rec.ID, Image: img}); !errdefs.IsConflict(err) {
		t.Fatalf("same ID twice: err = %v, want Conflict", err)
	}
	if _, err := l.PrepareRootFS(context.Background(), &spec.Record{ID: "init-x", Image: img}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("shared key as ID: err = %v", err)
	}
}

func TestPathEscapeStaysInside(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		root := t.TempDir()
		l := open(t, root, s, drv)
		outside := t.TempDir() // a directory outside the state root
		tag := filepath.Base(outside)
		deep := strings.Repeat("../", 40)
		img := s.image(t, layerTar(t,
			file("../../etc/evil-"+tag, "evil"),
			file(deep+strings.TrimPrefix(outside, "/")+"/abs", "evil"),
			symlink("esc", outside),
			file("esc/through-link", "evil"),
			symlink("rel", deep+strings.TrimPrefix(outside, "/")),
			file("rel/through-rel-link", "evil"),
		))
		rec := &spec.Record{ID: newID(t), Image: img}
		fs, err := l.PrepareRootFS(context.Background(), rec)
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("the layer wrote outside its root: %v", ents)
		}
		for _, p := range []string{
			filepath.Join(l.main.root, "snapshots", "etc", "evil-"+tag),
			filepath.Join(l.main.root, "etc", "evil-"+tag),
			filepath.Join(root, "etc", "evil-"+tag),
			"/etc/evil-" + tag,
		} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists (err %v): the layer escaped", p, err)
			}
		}
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		// Accepted: the entries landed inside the root filesystem.
		rootfs := mountAt(t, fs)
		if got := readFile(t, filepath.Join(rootfs, "etc", "evil-"+tag)); got != "evil" {
			t.Errorf("contained entry = %q", got)
		}
		if got := readFile(t, filepath.Join(rootfs, outside, "through-link")); got != "evil" {
			t.Errorf("entry through the symlink = %q, want it inside the root", got)
		}
	})
}

func TestParallelCreatesUnpackOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		root := t.TempDir()
		l := open(t, root, s, drv)
		img := twoLayers(t, s)
		const n = 20
		recs := make([]*spec.Record, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec := &spec.Record{ID: newID(t), Image: img}
				rec.RootFS, errs[i] = l.PrepareRootFS(context.Background(), rec)
				recs[i] = rec
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
		}
		if got := s.opens.Load(); got != 2 {
			t.Fatalf("OpenBlob called %d times, want 2 (each layer once)", got)
		}
		committed, active := snapshotNames(t, l)
		if len(committed) != 3 || len(active) != n {
			t.Fatalf("committed %v, %d active; want 2 layers + 1 init, %d containers", committed, len(active), n)
		}
		// A restarted process finds the layers committed and unpacks nothing.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l2 := open(t, root, s, drv)
		prepare(t, l2, img)
		if got := s.opens.Load(); got != 2 {
			t.Fatalf("after a restart OpenBlob called %d times, want still 2", got)
		}
		for _, rec := range recs {
			if err := l2.Undo(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestCanceledWaiterLeavesTheUnpackToOthers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		img := s.image(t, layerTar(t, file("a", "a")))
		s.gate, s.entered = make(chan struct{}), make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() {
			_, err := l.PrepareRootFS(ctx, &spec.Record{ID: newID(t), Image: img})
			first <- err
		}()
		<-s.entered // the unpack is under way, for the first caller
		second := make(chan error, 1)
		go func() {
			_, err := l.PrepareRootFS(context.Background(), &spec.Record{ID: newID(t), Image: img})
			second <- err
		}()
		cancel()
		if err := <-first; !errdefs.IsCanceled(err) {
			t.Fatalf("canceled create: err = %v, want Canceled", err)
		}
		close(s.gate)
		if err := <-second; err != nil {
			t.Fatalf("the create waiting for the same layer: %v", err)
		}
		if got := s.opens.Load(); got != 1 {
			t.Fatalf("OpenBlob called %d times, want 1", got)
		}
	})
}

func TestUndo(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		img := twoLayers(t, s)
		ctx := context.Background()
		a := prepare(t, l, img)
		b := prepare(t, l, img)
		dirA := a.RootFS.Mounts[0].Source
		if a.RootFS.Data["UpperDir"] != "" {
			dirA = filepath.Dir(a.RootFS.Data["UpperDir"])
		}

		// Twice, with the full record.
		for i := 0; i < 2; i++ {
			if err := l.Undo(ctx, a); err != nil {
				t.Fatalf("Undo %d: %v", i, err)
			}
		}
		if _, err := l.main.sn.Stat(ctx, a.ID); !cerrdefs.IsNotFound(err) {
			t.Fatalf("snapshot %s after Undo: %v", a.ID, err)
		}
		if _, err := os.Lstat(dirA); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("directory of the removed snapshot is left: %v", err)
		}

		// Shared layers stay: b still mounts and reads the image.
		for _, k := range []string{img.DiffIDs[0], img.ChainID, initKey(img.ChainID)} {
			if ok, err := l.committed(ctx, k); !ok || err != nil {
				t.Fatalf("shared snapshot %s: %v %v", k, ok, err)
			}
		}
		p, err := l.Mount(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(p, "keep")); got != "v2" {
			t.Fatalf("second container reads keep = %q", got)
		}

		// After a crash only the ID is known, and b is mounted.
		if err := l.Undo(ctx, &spec.Record{ID: b.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.main.sn.Stat(ctx, b.ID); !cerrdefs.IsNotFound(err) {
			t.Fatalf("snapshot %s after Undo by ID: %v", b.ID, err)
		}
		assertNoMounts(t, l)
		if err := l.Undo(ctx, &spec.Record{ID: newID(t)}); err != nil {
			t.Fatalf("Undo of a container that never was: %v", err)
		}
		committed, active := snapshotNames(t, l)
		if len(committed) != 3 || len(active) != 0 {
			t.Fatalf("after undoing all: committed %v active %v", committed, active)
		}
		// Removed overlay directories go through the trash, which empties in the background.
		if tr := l.main.trash; tr != nil {
			tr.wait()
			if ents, err := os.ReadDir(tr.dir); err != nil || len(ents) != 0 {
				t.Fatalf("trash after the removals: %v %v", ents, err)
			}
		}
	})
}

// TestTrashLeftByACrashIsEmptied checks that the directories a dead process left in the
// overlay trash are deleted when the driver is opened again.
func TestTrashLeftByACrashIsEmptied(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	left := filepath.Join(root, DriverOverlay, "trash", "7", "fs", "etc")
	if err := os.MkdirAll(left, 0o755); err != nil {
		t.Fatal(err)
	}
	l := open(t, root, newBlobStore(), DriverAuto)
	if l.main.trash == nil {
		t.Skip("the automatic choice is not overlayfs on this host, so there is no trash to test")
	}
	l.main.trash.wait() // the leftovers are deleted in the background
	if ents, err := os.ReadDir(l.main.trash.dir); err != nil || len(ents) != 0 {
		t.Fatalf("trash after open: %v %v", ents, err)
	}
}

// assertNoMounts checks that nothing is mounted below the stage's root and no mount point
// is left.
func assertNoMounts(t *testing.T, l *Layerer) {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(l.root))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 0 {
		t.Errorf("mounts left below %s: %v", l.root, infos[0].Mountpoint)
	}
	if ents, err := os.ReadDir(filepath.Join(l.root, "mounts")); err == nil && len(ents) != 0 {
		t.Errorf("mount points left: %v", ents)
	}
}

func TestMountUnmount(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		ctx := context.Background()
		rec := prepare(t, l, twoLayers(t, s))
		p1, err := l.Mount(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := l.Mount(ctx, &spec.Record{ID: rec.ID}) // by ID only, already mounted
		if err != nil || p2 != p1 || p1 != filepath.Join(l.root, "mounts", rec.ID) {
			t.Fatalf("Mount again = %q, %v; first %q", p2, err, p1)
		}
		infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(p1))
		if err != nil || len(infos) != 1 {
			t.Fatalf("mountinfo entries at %s: %d (%v), want exactly 1", p1, len(infos), err)
		}
		if got := readFile(t, filepath.Join(p1, "data/c")); got != "c" {
			t.Fatalf("data/c = %q", got)
		}
		for i := 0; i < 2; i++ {
			if err := l.Unmount(ctx, rec); err != nil {
				t.Fatalf("Unmount %d: %v", i, err)
			}
		}
		assertNoMounts(t, l)

		// Mounted again, then undone: nothing mounted, no mount point.
		if _, err := l.Mount(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := l.Undo(ctx, rec); err != nil {
			t.Fatal(err)
		}
		assertNoMounts(t, l)
		if _, err := l.Mount(ctx, rec); !errdefs.IsNotFound(err) {
			t.Fatalf("Mount after Undo: err = %v, want NotFound", err)
		}
		assertNoMounts(t, l)
	})
}

func TestMountLabel(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		const lbl = "system_u:object_r:container_file_t:s0:c1,c2"
		img := twoLayers(t, s)
		rec := &spec.Record{ID: newID(t), Image: img, Security: &spec.Security{MountLabel: lbl}}
		fs, err := l.PrepareRootFS(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		want := `context="` + lbl + `"`
		has := slices.Contains(fs.Mounts[0].Options, want)
		if fs.Driver == DriverOverlay && !has {
			t.Errorf("overlay options %v lack %s", fs.Mounts[0].Options, want)
		}
		if fs.Driver == DriverNative && has {
			t.Errorf("bind options %v carry a context", fs.Mounts[0].Options)
		}
		plain := prepare(t, l, img)
		for _, o := range plain.RootFS.Mounts[0].Options {
			if strings.HasPrefix(o, "context=") {
				t.Errorf("no label, yet option %s", o)
			}
		}
	})
}

func TestSweepRemovesLeftoverWork(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		root := t.TempDir()
		l := open(t, root, s, drv)
		img := twoLayers(t, s)
		rec := prepare(t, l, img)
		ctx := context.Background()
		// What a crash in the middle of an unpack leaves: an active extract-* snapshot.
		key := activeKey("sha256:" + strings.Repeat("a", 64))
		if _, err := l.main.sn.Prepare(ctx, key, img.ChainID); err != nil {
			t.Fatal(err)
		}
		stale := filepath.Join(l.root, "mounts", newID(t))
		if err := os.MkdirAll(stale, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l2 := open(t, root, s, drv)
		if _, err := l2.main.sn.Stat(ctx, key); !cerrdefs.IsNotFound(err) {
			t.Fatalf("leftover %s after New: %v", key, err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stale mount point left: %v", err)
		}
		if _, err := l2.main.sn.Stat(ctx, rec.ID); err != nil {
			t.Fatalf("the container's snapshot must survive a sweep: %v", err)
		}
		if n := len(mustReadDir(t, filepath.Join(l2.main.root, "snapshots"))); n != 4 {
			t.Errorf("%d snapshot directories, want 4 (2 layers, init, container)", n)
		}
	})
}

func mustReadDir(t *testing.T, p string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

func TestUndoWithTheRecordedDriver(t *testing.T) {
	needRoot(t)
	if !overlayKernel() {
		t.Skip("needs two drivers: the kernel has no overlayfs")
	}
	s := newBlobStore()
	root := t.TempDir()
	ctx := context.Background()
	img := twoLayers(t, s)
	nat := open(t, root, s, DriverNative)
	a := prepare(t, nat, img)
	b := prepare(t, nat, img)
	if _, err := nat.Mount(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := nat.Close(); err != nil {
		t.Fatal(err)
	}
	ov := open(t, root, s, DriverOverlay)
	if err := ov.Undo(ctx, a); err != nil { // recorded driver: native
		t.Fatal(err)
	}
	if err := ov.Undo(ctx, &spec.Record{ID: b.ID}); err != nil { // ID only: every driver
		t.Fatal(err)
	}
	assertNoMounts(t, ov)
	d, err := ov.driverNamed(DriverNative)
	if err != nil || d == nil {
		t.Fatalf("native driver: %v", err)
	}
	for _, id := range []string{a.ID, b.ID} {
		if _, err := d.sn.Stat(ctx, id); !cerrdefs.IsNotFound(err) {
			t.Errorf("native snapshot %s after Undo: %v", id, err)
		}
	}
}
