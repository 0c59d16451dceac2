package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// testHost is the engine as the stage sees it (core.Host): the registered containers.
type testHost struct {
	mu   sync.Mutex
	recs map[string]*spec.Record
}

func newTestHost() *testHost { return &testHost{recs: map[string]*spec.Record{}} }

func (h *testHost) register(rec *spec.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs[rec.ID] = rec
}

func (h *testHost) Container(_ context.Context, ref string) (*spec.Record, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.recs[ref]; r != nil {
		return r, nil
	}
	return nil, errdefs.NotFound(errors.New("No such container: " + ref))
}

func (h *testHost) Containers(context.Context) ([]*spec.Record, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*spec.Record
	for _, r := range h.recs {
		out = append(out, r)
	}
	return out, nil
}

// openPooled builds the overlay stage on root with a host, so that it keeps a pool.
func openPooled(t *testing.T, root string, s *blobStore, host core.Host, opts ...Option) *Layerer {
	t.Helper()
	needRoot(t)
	l, err := New(context.Background(), core.Env{Root: root, Logger: hclog.NewNullLogger(), Images: s, Host: host}, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if l.Driver() != DriverOverlay {
		t.Skipf("skipped: overlayfs is not usable here (driver %s); the snapshot pool is the overlay driver's", l.Driver())
	}
	return l
}

// waitPool waits until the pool holds n snapshots ready on parent and no fill runs.
func waitPool(t *testing.T, p *snapshotPool, parent string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		got, filling := 0, false
		if pp := p.parents[parent]; pp != nil {
			got, filling = len(pp.ready), pp.filling
		}
		p.mu.Unlock()
		if got == n && !filling {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool holds %d snapshots on %s (filling %v), want %d", got, parent, filling, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// activeKeys lists the active snapshots of the stage's driver.
func activeKeys(t *testing.T, l *Layerer) []string {
	t.Helper()
	_, active := snapshotNames(t, l)
	slices.Sort(active)
	return active
}

// TestPoolHandsOutCommittedSnapshots checks that once an image was used, a create takes a
// snapshot made ahead, without a metadata commit of its own, and that the snapshot is the
// one a prepare makes: same parent, same directories and owner, mountable, reading the
// image; that Undo (with the record, and with the ID alone), Mount and the removal of a
// registered container find it by the key recorded; and that Close removes the pool.
func TestPoolHandsOutCommittedSnapshots(t *testing.T) {
	root := t.TempDir()
	s := newBlobStore()
	host := newTestHost()
	l := openPooled(t, root, s, host)
	img := twoLayers(t, s)
	ctx := context.Background()
	parent := initKey(img.ChainID)

	// The first creates of the image prepare their own snapshots; the second starts the
	// fill (a process that makes one container makes no spares).
	a := prepare(t, l, img)
	l.main.pool.work.Wait()
	if a.RootFS.Key != a.ID || l.main.pool.readyCount() != 0 {
		t.Fatalf("first create's key %q, want its ID; %d spares, want none", a.RootFS.Key, l.main.pool.readyCount())
	}
	a2 := prepare(t, l, img)
	if a2.RootFS.Key != a2.ID {
		t.Fatalf("second create's key %q, want its ID", a2.RootFS.Key)
	}
	waitPool(t, l.main.pool, parent, poolWant)

	commits := l.main.ms.groups.Load()
	b := prepare(t, l, img)
	if !strings.HasPrefix(b.RootFS.Key, l.main.pool.prefix) {
		t.Fatalf("second create's key %q, want one of the pool's (%s*)", b.RootFS.Key, l.main.pool.prefix)
	}
	if n := l.main.ms.groups.Load() - commits; n != 0 {
		t.Errorf("taking a snapshot from the pool ran %d metadata transactions, want 0", n)
	}
	info, err := l.main.sn.Stat(ctx, b.RootFS.Key)
	if err != nil || info.Kind != snapshots.KindActive || info.Parent != parent {
		t.Fatalf("snapshot %s: %+v %v; want active on %s", b.RootFS.Key, info, err, parent)
	}
	dirA := overlaySnapshotDir(l.main, mountsOf(t, l, a.ID))
	dirB := overlaySnapshotDir(l.main, mountsOf(t, l, b.RootFS.Key))
	if dirB == "" || dirB == dirA || b.RootFS.Data["UpperDir"] != filepath.Join(dirB, "fs") {
		t.Fatalf("snapshot directory %q (first %q), UpperDir %q", dirB, dirA, b.RootFS.Data["UpperDir"])
	}
	for _, sub := range []string{"", "fs", "work"} {
		if sa, sb := dirSig(t, filepath.Join(dirA, sub)), dirSig(t, filepath.Join(dirB, sub)); sa != sb {
			t.Errorf("%s/: prepared %s, from the pool %s", sub, sa, sb)
		}
	}
	if got := readFile(t, filepath.Join(mountAt(t, b.RootFS), "keep")); got != "v2" {
		t.Fatalf("a container from the pool reads keep = %q", got)
	}
	p, err := l.Mount(ctx, b)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	if got := readFile(t, filepath.Join(p, "keep")); got != "v2" {
		t.Fatalf("slipway mount of a container from the pool reads keep = %q", got)
	}
	if err := l.Unmount(ctx, b); err != nil {
		t.Fatal(err)
	}

	// A rollback with the record removes the key recorded.
	if err := l.Undo(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := l.main.sn.Stat(ctx, b.RootFS.Key); !cerrdefs.IsNotFound(err) {
		t.Fatalf("snapshot %s after Undo: %v", b.RootFS.Key, err)
	}
	if _, err := os.Lstat(dirB); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory of the undone snapshot: %v", err)
	}
	// A run cut short before its output was recorded: Undo has only the ID.
	c := prepare(t, l, img)
	if err := l.Undo(ctx, &spec.Record{ID: c.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.main.sn.Stat(ctx, c.RootFS.Key); !cerrdefs.IsNotFound(err) {
		t.Fatalf("snapshot %s after Undo by ID: %v", c.RootFS.Key, err)
	}
	// A registered container's removal goes through the reaper, by the recorded key.
	r := prepare(t, l, img)
	host.register(r)
	if err := l.Undo(core.WithUndoCause(ctx, core.UndoCause{Remove: true}), r); err != nil {
		t.Fatal(err)
	}
	l.main.reaper.wait()
	if _, err := l.main.sn.Stat(ctx, r.RootFS.Key); !cerrdefs.IsNotFound(err) {
		t.Fatalf("snapshot %s after its removal: %v", r.RootFS.Key, err)
	}
	// A key that is neither the container's ID nor a spare's, or an ID that is a spare's,
	// is refused: Undo never removes a shared snapshot or one in the pool.
	if err := l.Undo(ctx, &spec.Record{ID: newID(t), RootFS: &spec.RootFS{Key: "sha256:x"}}); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Fatalf("Undo with a shared snapshot's key: %v, want InvalidArgument", err)
	}
	if err := l.Undo(ctx, &spec.Record{ID: l.main.pool.prefix + "1"}); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Fatalf("Undo of the ID %s1: %v, want InvalidArgument", l.main.pool.prefix, err)
	}

	for _, r := range []*spec.Record{a, a2} {
		if err := l.Undo(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if left := activeKeys(t, l); len(left) != poolWant-3 {
		t.Fatalf("%d active snapshots while the pool holds %d: %v", len(left), poolWant-3, left)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed: nothing but the shared layers is left, in the metadata and on the disk.
	l2 := open(t, root, s, DriverAuto)
	if left := activeKeys(t, l2); len(left) != 0 {
		t.Fatalf("active snapshots after Close: %v", left)
	}
	if ents, _ := os.ReadDir(filepath.Join(l2.main.root, "snapshots")); len(ents) != 3 {
		t.Fatalf("snapshot directories after Close: %d, want the 3 shared ones", len(ents))
	}
}

// abandon makes the pool forget its snapshots without removing them, as a process that is
// killed does.
func (p *snapshotPool) abandon() {
	p.mu.Lock()
	p.closed = true
	p.emptyLocked()
	p.mu.Unlock()
	p.work.Wait()
}

// TestPoolSweptAfterACrash checks that the snapshots a killed process left, ready in its
// pool or taken by a run that never registered, are removed when the stage is built again
// with the engine's records, and that a registered container's snapshot from the pool is
// kept; without a host, nothing of the pool's is touched.
func TestPoolSweptAfterACrash(t *testing.T) {
	root := t.TempDir()
	s := newBlobStore()
	host := newTestHost()
	l := openPooled(t, root, s, host)
	img := twoLayers(t, s)
	parent := initKey(img.ChainID)
	prepare(t, l, img)
	prepare(t, l, img)
	waitPool(t, l.main.pool, parent, poolWant)
	kept := prepare(t, l, img) // registered
	host.register(kept)
	lost := prepare(t, l, img) // its run died before registering
	l.main.pool.abandon()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	plain := open(t, root, s, DriverAuto) // no host: no sweep of the pool's
	before := activeKeys(t, plain)
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	if len(before) != poolWant+2 || !slices.Contains(before, lost.RootFS.Key) {
		t.Fatalf("active snapshots without a host: %d %v, want the first two creates', %d spares and the two taken", len(before), before, poolWant-2)
	}

	l2 := openPooled(t, root, s, host)
	after := activeKeys(t, l2)
	want := []string{kept.RootFS.Key}
	for _, k := range before {
		if !isSpareKey(k) {
			want = append(want, k) // the first two creates', keyed by their IDs
		}
	}
	slices.Sort(want)
	if !slices.Equal(after, want) {
		t.Fatalf("active snapshots after the sweep: %v, want %v", after, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(l2.main.root, "snapshots")); len(ents) != 3+len(want) {
		t.Fatalf("snapshot directories after the sweep: %d, want %d", len(ents), 3+len(want))
	}
}

// TestPoolKeepsNoParentFromPruning checks that PruneLayers removes the pool's snapshots
// (children of the init layer) first, so that an image no container uses is pruned whole.
func TestPoolKeepsNoParentFromPruning(t *testing.T) {
	s := newBlobStore()
	l := openPooled(t, t.TempDir(), s, newTestHost())
	img := twoLayers(t, s)
	a, a2 := prepare(t, l, img), prepare(t, l, img)
	waitPool(t, l.main.pool, initKey(img.ChainID), poolWant)
	for _, r := range []*spec.Record{a, a2} {
		if err := l.Undo(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := l.PruneLayers(context.Background(), func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Fatalf("pruned %v, want the two layers and the init layer", removed)
	}
	committed, active := snapshotNames(t, l)
	if len(committed)+len(active) != 0 {
		t.Fatalf("after the prune: committed %v, active %v", committed, active)
	}
	// The pool fills again on the next uses.
	prepare(t, l, img)
	b := prepare(t, l, img)
	waitPool(t, l.main.pool, initKey(img.ChainID), poolWant)
	if c := prepare(t, l, img); !isSpareKey(c.RootFS.Key) || b.RootFS.Key != b.ID {
		t.Fatalf("keys after the prune: %q, %q", b.RootFS.Key, c.RootFS.Key)
	}
}

// TestPoolEvictsTheLeastRecentlyUsedParent checks that at most poolParents parents keep
// snapshots, and that the evicted parent's are removed.
func TestPoolEvictsTheLeastRecentlyUsedParent(t *testing.T) {
	s := newBlobStore()
	l := openPooled(t, t.TempDir(), s, newTestHost())
	p := l.main.pool
	var first string
	for i := 0; i <= poolParents; i++ {
		img := s.image(t, layerTar(t, file("f", strings.Repeat("x", i+1))))
		prepare(t, l, img)
		prepare(t, l, img)
		waitPool(t, p, initKey(img.ChainID), poolWant)
		if i == 0 {
			first = initKey(img.ChainID)
		}
	}
	p.mu.Lock()
	n, kept := len(p.parents), p.parents[first] != nil
	p.mu.Unlock()
	if n != poolParents || kept {
		t.Fatalf("%d parents in the pool (the first kept: %v), want %d without the first", n, kept, poolParents)
	}
	p.work.Wait()
	if got, want := len(activeKeys(t, l)), 2*(poolParents+1)+poolParents*poolWant; got != want {
		t.Fatalf("%d active snapshots, want %d: the containers' and the pools of %d parents", got, want, poolParents)
	}
}

// TestPoolWithRemappedRoot checks that with user namespace remapping a snapshot from the
// pool is owned like one prepared for the container (its fs directory like the init
// layer's), and shows the init layer's entries owned by the remapped root.
func TestPoolWithRemappedRoot(t *testing.T) {
	const id = 100000
	s := newBlobStore()
	l := openPooled(t, t.TempDir(), s, newTestHost(), WithRemappedRoot(id, id))
	img := twoLayers(t, s)
	a := prepare(t, l, img)
	prepare(t, l, img)
	waitPool(t, l.main.pool, initKey(img.ChainID), poolWant)
	b := prepare(t, l, img)
	if !isSpareKey(b.RootFS.Key) {
		t.Fatalf("third create's key %q, want a spare's", b.RootFS.Key)
	}
	owner := func(path string) string {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	if oa, ob := owner(a.RootFS.Data["UpperDir"]), owner(b.RootFS.Data["UpperDir"]); oa != ob {
		t.Errorf("fs owned by %s when prepared, %s from the pool", oa, ob)
	}
	if o := owner(filepath.Join(mountAt(t, b.RootFS), "etc", "hostname")); o != fmt.Sprintf("%d:%d", id, id) {
		t.Errorf("the init layer's /etc/hostname owned by %s, want %d:%d", o, id, id)
	}
}

// readyCount is how many snapshots the pool holds ready.
func (p *snapshotPool) readyCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pp := range p.parents {
		n += len(pp.ready)
	}
	return n
}
