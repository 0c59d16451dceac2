package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// openOverlay opens the stage with the overlay driver, or skips the test, saying why, on a
// host without overlayfs (CI has it).
func openOverlay(t *testing.T, root string, s *blobStore) *Layerer {
	t.Helper()
	needRoot(t)
	l := open(t, root, s, DriverAuto)
	if l.Driver() != DriverOverlay {
		t.Skipf("skipped: overlayfs is not usable here (driver %s); spare directories are the overlay driver's", l.Driver())
	}
	return l
}

// waitSpares waits until the pool holds n spares.
func waitSpares(t *testing.T, p *spareDirs, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		got, filling := len(p.ready), p.filling
		p.mu.Unlock()
		if got == n && !filling {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool holds %d spares (filling %v), want %d", got, filling, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dirSig describes a directory as the tests compare them: mode and owner.
func dirSig(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	names, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, n := range names {
		ns = append(ns, n.Name())
	}
	return fmt.Sprintf("%s %d:%d [%s]", fi.Mode(), st.Uid, st.Gid, strings.Join(ns, " "))
}

// snapshotDirs lists the entries of sub, a directory in the overlay driver's root.
func snapshotDirs(t *testing.T, l *Layerer, sub string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(l.main.root, sub))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// activeIDs lists the directory IDs of the active snapshots the metadata knows.
func activeIDs(t *testing.T, l *Layerer) []string {
	t.Helper()
	var ids []string
	err := l.main.sn.Walk(context.Background(), func(ctx context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindActive {
			return nil
		}
		ms, err := l.main.sn.Mounts(ctx, info.Name)
		if err != nil {
			return err
		}
		ids = append(ids, filepath.Base(overlaySnapshotDir(l.main, ms)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A container's snapshot prepared from a spare is the one the overlay snapshotter would have
// made: same directories, modes and owners, same mounts but for its own directory, and an
// overlay mount of it works.
func TestPrepareFromSpare(t *testing.T) {
	root := t.TempDir()
	s := newBlobStore()
	l := openOverlay(t, root, s)
	img := twoLayers(t, s)
	ctx := context.Background()
	// The pool is empty at first: the snapshotter's Prepare makes this one.
	a := prepare(t, l, img)
	waitSpares(t, l.main.spares, spareSnapshots)
	b := prepare(t, l, img)
	l.main.spares.mu.Lock()
	left := len(l.main.spares.ready)
	l.main.spares.mu.Unlock()
	if left != spareSnapshots-1 {
		t.Fatalf("%d spares left after a prepare, want %d: the spare was not used", left, spareSnapshots-1)
	}

	dirA := overlaySnapshotDir(l.main, mountsOf(t, l, a.ID))
	dirB := overlaySnapshotDir(l.main, mountsOf(t, l, b.ID))
	if dirA == "" || dirB == "" || dirA == dirB {
		t.Fatalf("snapshot directories %q and %q", dirA, dirB)
	}
	for _, sub := range []string{"", "fs", "work"} {
		if sa, sb := dirSig(t, filepath.Join(dirA, sub)), dirSig(t, filepath.Join(dirB, sub)); sa != sb {
			t.Errorf("%s/: snapshotter's %s, from a spare %s", sub, sa, sb)
		}
	}
	ma, mb := mountsOf(t, l, a.ID), mountsOf(t, l, b.ID)
	if len(ma) != 1 || len(mb) != 1 || ma[0].Type != mb[0].Type {
		t.Fatalf("mounts %+v and %+v", ma, mb)
	}
	oa := strings.ReplaceAll(strings.Join(ma[0].Options, ","), dirA, "DIR")
	ob := strings.ReplaceAll(strings.Join(mb[0].Options, ","), dirB, "DIR")
	if oa != ob {
		t.Errorf("mount options differ:\n snapshotter: %s\n from spare:  %s", oa, ob)
	}
	ia, err := l.main.sn.Stat(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := l.main.sn.Stat(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ia.Kind != ib.Kind || ia.Parent != ib.Parent || !slices.Equal(mapKeys(ia.Labels), mapKeys(ib.Labels)) {
		t.Errorf("snapshot info: snapshotter's %+v, from a spare %+v", ia, ib)
	}

	// The root filesystem works: the image's files are there and a write lands in fs.
	path, err := l.Mount(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(path, "keep")); err != nil || string(got) != "v2" {
		t.Errorf("keep = %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(path, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Unmount(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirB, "fs", "new")); err != nil {
		t.Errorf("the write did not land in the snapshot's fs: %v", err)
	}

	// A key in use is a conflict, and the spare it took leaves nothing behind.
	before := snapshotDirs(t, l, "snapshots")
	if _, err := l.PrepareRootFS(ctx, &spec.Record{ID: b.ID, Image: img}); !errdefs.IsConflict(err) {
		t.Fatalf("prepare of a key in use: %v, want a conflict", err)
	}
	if after := snapshotDirs(t, l, "snapshots"); !slices.Equal(before, after) {
		t.Errorf("snapshots/ was %v, is %v after the failed prepare", before, after)
	}
	waitSpares(t, l.main.spares, spareSnapshots-2) // b's and the failed prepare's were used
	if got := snapshotDirs(t, l, "spare"); len(got) != spareSnapshots-2 {
		t.Errorf("spare/ holds %d entries, the pool %d", len(got), spareSnapshots-2)
	}
	for _, r := range []*spec.Record{a, b} {
		if err := l.Undo(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

func mountsOf(t *testing.T, l *Layerer, key string) []mount.Mount {
	t.Helper()
	ms, err := l.main.sn.Mounts(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func mapKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Parallel prepares share metadata transactions (groupStore): when one of a group fails
// (a key in use), the others are retried with fresh spares, and in the end every directory in
// snapshots/ belongs to a snapshot the metadata knows, and the other way round.
func TestSparesInFailedGroups(t *testing.T) {
	root := t.TempDir()
	s := newBlobStore()
	l := openOverlay(t, root, s)
	img := twoLayers(t, s)
	ctx := context.Background()
	taken := prepare(t, l, img)
	waitSpares(t, l.main.spares, spareSnapshots)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		made      []*spec.Record
	)
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := &spec.Record{ID: newID(t), Image: img}
			if i%4 == 0 {
				rec.ID = taken.ID
			}
			fs, err := l.PrepareRootFS(ctx, rec)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case i%4 == 0 && errdefs.IsConflict(err):
				conflicts++
			case i%4 == 0:
				t.Errorf("prepare of a key in use: %v, want a conflict", err)
			case err != nil:
				t.Errorf("prepare: %v", err)
			default:
				rec.RootFS = fs
				made = append(made, rec)
			}
		}()
	}
	wg.Wait()
	if conflicts != 6 || len(made) != 18 {
		t.Fatalf("%d conflicts and %d prepared, want 6 and 18", conflicts, len(made))
	}
	dirs := snapshotDirs(t, l, "snapshots")
	ids := activeIDs(t, l)
	committed, _ := snapshotNames(t, l)
	if len(dirs) != len(ids)+len(committed) {
		t.Errorf("snapshots/ holds %d directories; the metadata knows %d active and %d committed snapshots", len(dirs), len(ids), len(committed))
	}
	for _, id := range ids {
		if !slices.Contains(dirs, id) {
			t.Errorf("active snapshot %s has no directory", id)
		}
	}
	for _, r := range append(made, taken) {
		if err := l.Undo(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

// Whatever an earlier process left in spare/ (a spare cut short by a crash, say) is deleted
// when the driver is opened, never used.
func TestSparesEmptiedAtOpen(t *testing.T) {
	root := t.TempDir()
	s := newBlobStore()
	l := openOverlay(t, root, s)
	img := twoLayers(t, s)
	prepare(t, l, img)
	waitSpares(t, l.main.spares, spareSnapshots)
	spareDir := l.main.spares.dir
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(spareDir, "s-cut-short", "fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	l2 := openOverlay(t, root, s)
	if got := snapshotDirs(t, l2, "spare"); len(got) != 0 {
		t.Fatalf("spare/ holds %v after open, want nothing", got)
	}
	prepare(t, l2, img)
}
