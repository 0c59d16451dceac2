package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	cerrdefs "github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// openGrouped opens containerd's overlay snapshotter on a group-committing metadata store
// under a temporary directory, as openDriver does.
func openGrouped(t *testing.T) (snapshots.Snapshotter, *groupStore, string) {
	t.Helper()
	dir := t.TempDir()
	ms, err := storage.NewMetaStore(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupStore(ms)
	sn, err := overlay.NewSnapshotter(dir, overlay.AsynchronousRemove, overlay.WithMetaStore(g))
	if err != nil {
		// Preparing snapshots needs neither root nor an overlayfs mount: a failure here is real.
		t.Fatalf("open containerd's overlay snapshotter in %s: %v", dir, err)
	}
	t.Cleanup(func() { sn.Close() })
	return groupSnapshotter{sn}, g, dir
}

// holdWriter takes bbolt's writer lock of the store until the returned function is called,
// so that the snapshotter calls made meanwhile queue up and run as one group.
func holdWriter(t *testing.T, g *groupStore) func() {
	t.Helper()
	_, tx, err := g.inner.TransactionContext(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return func() { tx.Rollback() }
}

// waitEntered waits until the store has received n write calls since it had received
// before: with the writer lock held (holdWriter), each is then queued or in the group that
// waits for the lock.
func waitEntered(t *testing.T, g *groupStore, before int64, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := g.entered.Load() - before
		if got >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls made, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkDirsMatchMetadata asserts that the snapshot directories are exactly those of the
// snapshots in the metadata, with distinct IDs, and that the ID sequence is past them all.
func checkDirsMatchMetadata(t *testing.T, g *groupStore, dir string) {
	t.Helper()
	var ids []string
	var seq uint64
	err := g.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		m, err := storage.IDMap(ctx)
		for id := range m {
			ids = append(ids, id)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, tx, err := g.inner.TransactionContext(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	seq = snapshotSequence(tx.(*bolt.Tx))
	tx.Rollback()
	ents, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		dirs = append(dirs, e.Name())
	}
	sort.Strings(ids)
	sort.Strings(dirs)
	if strings.Join(ids, " ") != strings.Join(dirs, " ") {
		t.Errorf("snapshot directories %v, want those of the metadata %v", dirs, ids)
	}
	for _, id := range ids {
		var n uint64
		fmt.Sscan(id, &n)
		if n > seq {
			t.Errorf("snapshot ID %d is past the sequence %d", n, seq)
		}
	}
}

func TestGroupCommitSharesOneTransaction(t *testing.T) {
	sn, g, dir := openGrouped(t)
	ctx := context.Background()
	if _, err := sn.Prepare(ctx, "base-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "base", "base-active"); err != nil {
		t.Fatal(err)
	}
	const n = 16
	release := holdWriter(t, g)
	before := g.entered.Load()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = sn.Prepare(ctx, fmt.Sprintf("c%d", i), "base") })
	}
	// The first caller leads and waits for the writer lock with the calls that queued
	// before it took them; the others queue.
	waitEntered(t, g, before, n)
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("prepare c%d: %v", i, err)
		}
	}
	if got := g.groups.Load(); got > 4 {
		t.Errorf("%d prepares took %d transactions, want them grouped (at most 4 counting base)", n, got)
	}
	checkDirsMatchMetadata(t, g, dir)
	// Each is a real, distinct snapshot.
	seen := map[string]bool{}
	for i := range n {
		ms, err := sn.Mounts(ctx, fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatal(err)
		}
		up := upperOf(ms[0].Options)
		if seen[up] {
			t.Errorf("two snapshots share %s", up)
		}
		seen[up] = true
	}
}

// TestGroupCommitFailureAbortsOnlyItsOwn makes some calls of a group fail, one of them
// after it was given an ID, and checks that every other call still succeeds (retried after
// its group was rolled back), that the failing ones get their own error, and that no
// directory is left without metadata nor any ID given twice.
func TestGroupCommitFailureAbortsOnlyItsOwn(t *testing.T) {
	sn, g, dir := openGrouped(t)
	ctx := context.Background()
	for _, b := range []string{"base", "broken"} {
		if _, err := sn.Prepare(ctx, b+"-active", ""); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, b, b+"-active"); err != nil {
			t.Fatal(err)
		}
	}
	// A child of "broken" fails after its ID is taken: the snapshotter stats the parent's
	// directory then.
	var brokenID string
	if err := g.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
		brokenID, _, _, err = storage.GetInfo(ctx, "broken")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "snapshots", brokenID, "fs")); err != nil {
		t.Fatal(err)
	}

	type call struct {
		key, parent string
		want        func(error) bool
	}
	ok := func(err error) bool { return err == nil }
	var calls []call
	for i := range 24 {
		switch {
		case i%6 == 3:
			calls = append(calls, call{fmt.Sprintf("orphan%d", i), "missing", cerrdefs.IsNotFound})
		case i%6 == 5:
			calls = append(calls, call{fmt.Sprintf("late%d", i), "broken", func(err error) bool { return err != nil && !cerrdefs.IsNotFound(err) }})
		default:
			calls = append(calls, call{fmt.Sprintf("c%d", i), "base", ok})
		}
	}
	// Three calls for one key: exactly one may win.
	for range 3 {
		calls = append(calls, call{"dup", "base", nil})
	}

	release := holdWriter(t, g)
	before := g.entered.Load()
	var wg sync.WaitGroup
	errs := make([]error, len(calls))
	for i, c := range calls {
		wg.Go(func() { _, errs[i] = sn.Prepare(ctx, c.key, c.parent) })
	}
	waitEntered(t, g, before, len(calls))
	release()
	wg.Wait()

	dupWins := 0
	for i, c := range calls {
		if c.want == nil {
			switch {
			case errs[i] == nil:
				dupWins++
			case !cerrdefs.IsAlreadyExists(errs[i]):
				t.Errorf("prepare dup: %v, want success or AlreadyExists", errs[i])
			}
			continue
		}
		if !c.want(errs[i]) {
			t.Errorf("prepare %s (parent %s): %v", c.key, c.parent, errs[i])
		}
		if errs[i] != nil && strings.Contains(errs[i].Error(), errGroupAborted.Error()) {
			t.Errorf("prepare %s got the group's abort instead of its own result: %v", c.key, errs[i])
		}
	}
	if dupWins != 1 {
		t.Errorf("%d prepares of one key succeeded, want 1", dupWins)
	}
	checkDirsMatchMetadata(t, g, dir)

	// Removals grouped with a failing one behave the same.
	release = holdWriter(t, g)
	before = g.entered.Load()
	keys := []string{"c0", "missing-key", "c1", "c2", "dup"}
	rerrs := make([]error, len(keys))
	for i, k := range keys {
		wg.Go(func() { rerrs[i] = sn.Remove(ctx, k) })
	}
	waitEntered(t, g, before, len(keys))
	release()
	wg.Wait()
	for i, k := range keys {
		if k == "missing-key" {
			if !cerrdefs.IsNotFound(rerrs[i]) {
				t.Errorf("remove %s: %v, want NotFound", k, rerrs[i])
			}
			continue
		}
		if rerrs[i] != nil {
			t.Errorf("remove %s: %v", k, rerrs[i])
		}
		if _, err := sn.Stat(ctx, k); !cerrdefs.IsNotFound(err) {
			t.Errorf("stat %s after remove: %v, want NotFound", k, err)
		}
	}
}

func upperOf(opts []string) string {
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			return v
		}
	}
	return strings.Join(opts, ",")
}

// TestFailedCommitKeepsTheSequence makes a commit fail (the database may not grow) on a
// new store, whose first snapshot makes the bucket that holds the ID sequence: the ID the
// rolled-back snapshot had is never handed out again, so that its caller's clean-up of
// snapshots/<ID> cannot meet a later snapshot's directory.
func TestFailedCommitKeepsTheSequence(t *testing.T) {
	dir := t.TempDir()
	ms, err := storage.NewMetaStore(filepath.Join(dir, "metadata.db"), func(o *bolt.Options) error {
		o.MaxSize = 1 << 20
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupStore(ms)
	sn, err := overlay.NewSnapshotter(dir, overlay.AsynchronousRemove, overlay.WithMetaStore(g))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	ctx := context.Background()
	var failedID string
	big := strings.Repeat("x", 2<<20)
	err = g.WithTransaction(ctx, true, func(ctx context.Context) error {
		s, err := storage.CreateSnapshot(ctx, snapshots.KindActive, "too-big", "", snapshots.WithLabels(map[string]string{"big": big}))
		failedID = s.ID
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "commit failed") {
		t.Fatalf("commit of a snapshot past the size limit: %v, want it to fail", err)
	}
	if _, err := sn.Stat(ctx, "too-big"); !cerrdefs.IsNotFound(err) {
		t.Errorf("the snapshot whose commit failed: %v, want NotFound", err)
	}
	var nextID string
	if err := g.WithTransaction(ctx, true, func(ctx context.Context) error {
		s, err := storage.CreateSnapshot(ctx, snapshots.KindActive, "next", "")
		nextID = s.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var f, n uint64
	fmt.Sscan(failedID, &f)
	fmt.Sscan(nextID, &n)
	if f == 0 || n <= f {
		t.Errorf("next snapshot ID %s, want past the rolled-back %s", nextID, failedID)
	}
}
