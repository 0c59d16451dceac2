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
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/core"
)

// removal is the context of an undo that removes a registered container.
func removal() context.Context {
	return core.WithUndoCause(context.Background(), core.UndoCause{Remove: true})
}

// noted returns the keys in the driver's file of snapshots to remove.
func noted(t *testing.T, d *driver) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d.root, reapFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// exists reports whether the driver has a snapshot key.
func exists(t *testing.T, d *driver, key string) bool {
	t.Helper()
	_, err := d.sn.Stat(context.Background(), key)
	if cerrdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestRemovalLeavesTheSnapshotToTheReaper checks that the undo of a removal notes the key and
// returns, that the snapshot is gone after a pause of the stage (not while it is busy), that
// the file is emptied then, and that a rollback still removes at once.
func TestRemovalLeavesTheSnapshotToTheReaper(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		img := twoLayers(t, s)
		d := l.main
		a, b, c := prepare(t, l, img), prepare(t, l, img), prepare(t, l, img)

		if err := l.Undo(removal(), a); err != nil {
			t.Fatal(err)
		}
		if err := l.Undo(removal(), b); err != nil {
			t.Fatal(err)
		}
		// Twice is a no-op, as every undo.
		if err := l.Undo(removal(), b); err != nil {
			t.Fatal(err)
		}
		if got := noted(t, d); !slices.Equal(got, []string{a.ID, b.ID}) {
			t.Fatalf("noted %v, want %v", got, []string{a.ID, b.ID})
		}
		// Busy: a prepare every 20 ms keeps the snapshots there.
		var busy []string
		for end := time.Now().Add(3 * reapIdle); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			busy = append(busy, prepare(t, l, img).ID)
		}
		if !exists(t, d, a.ID) || !exists(t, d, b.ID) {
			t.Fatal("the reaper removed snapshots while the stage was busy")
		}
		// A rollback removes at once.
		if err := l.Undo(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if exists(t, d, c.ID) {
			t.Fatal("the rollback left the snapshot")
		}
		// A pause lets the reaper work.
		deadline := time.Now().Add(10 * time.Second)
		for exists(t, d, a.ID) || exists(t, d, b.ID) {
			if time.Now().After(deadline) {
				t.Fatal("the reaper did not remove the snapshots after a pause")
			}
			time.Sleep(20 * time.Millisecond)
		}
		d.reaper.wait()
		if got := noted(t, d); len(got) != 0 {
			t.Fatalf("noted after the reaper's work: %v", got)
		}
		for _, id := range busy {
			if !exists(t, d, id) {
				t.Fatalf("the reaper removed %s, which nobody removed", id)
			}
		}
		// The directories went too (overlay: through the trash).
		if tr := d.trash; tr != nil {
			tr.wait()
		}
		if n := len(mustReadDir(t, filepath.Join(d.root, "snapshots"))); n != 3+len(busy) {
			t.Errorf("%d snapshot directories, want %d (2 layers, init, %d containers)", n, 3+len(busy), len(busy))
		}
	})
}

// TestReaperFinishesAfterACrash checks that the keys a dead process noted are removed by the
// next one, and that a key noted but never made (a line a crash cut short) is harmless.
func TestReaperFinishesAfterACrash(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		root := t.TempDir()
		l := open(t, root, s, drv)
		img := twoLayers(t, s)
		gone, kept := prepare(t, l, img), prepare(t, l, img)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// What a process killed after the removal's undo leaves: the key in the file, the
		// snapshot in place.
		path := filepath.Join(root, "snapshots", l.main.name, reapFile)
		if err := os.WriteFile(path, []byte(gone.ID+"\n"+newID(t)+"\n"+"0123"), 0o600); err != nil {
			t.Fatal(err)
		}
		l2 := open(t, root, s, drv)
		l2.main.reaper.wait()
		if exists(t, l2.main, gone.ID) {
			t.Fatal("the snapshot noted by the dead process is still there")
		}
		if !exists(t, l2.main, kept.ID) {
			t.Fatal("the reaper removed a snapshot nobody removed")
		}
		if got := noted(t, l2.main); len(got) != 0 {
			t.Fatalf("noted after the reaper's work: %v", got)
		}
	})
}

// TestKeyUsedAgainWhileNoted checks that a prepare of a key that waits for the reaper removes
// the old snapshot first, and that the file stops naming the key, so that a crash cannot
// take the new snapshot for the old one.
func TestKeyUsedAgainWhileNoted(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		l := open(t, t.TempDir(), s, drv)
		img := twoLayers(t, s)
		rec := prepare(t, l, img)
		other := prepare(t, l, img)
		ctx := context.Background()
		p, err := l.Mount(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "old"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := l.Undo(removal(), rec); err != nil {
			t.Fatal(err)
		}
		if err := l.Undo(removal(), other); err != nil {
			t.Fatal(err)
		}
		fs, err := l.PrepareRootFS(ctx, rec)
		if err != nil {
			t.Fatalf("prepare of the key again: %v", err)
		}
		rec.RootFS = fs
		p, err = l.Mount(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(p, "old")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the new snapshot holds the old one's file: %v", err)
		}
		if got := noted(t, l.main); slices.Contains(got, rec.ID) || !slices.Contains(got, other.ID) {
			t.Fatalf("noted %v: want %s and not %s", got, other.ID, rec.ID)
		}
		if err := l.Unmount(ctx, rec); err != nil {
			t.Fatal(err)
		}
		l.main.reaper.wait()
		if !exists(t, l.main, rec.ID) || exists(t, l.main, other.ID) {
			t.Fatal("after the reaper: the key used again must stay, the other must go")
		}
	})
}

// TestReaperRewritesOnFailure checks that a key whose removal failed stays in the file for
// the next start.
func TestReaperRewritesOnFailure(t *testing.T) {
	dir := t.TempDir()
	fail := errors.New("disk on fire")
	var (
		mu    sync.Mutex
		calls []string
	)
	r, err := newReaper(dir, func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, key)
		if key == "bad" {
			return fail
		}
		return nil
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bad", "good"} {
		if err := r.put(k); err != nil {
			t.Fatal(err)
		}
	}
	r.wait()
	data, err := os.ReadFile(filepath.Join(dir, reapFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data)); !slices.Contains(got, "bad") {
		t.Fatalf("file after a failed removal: %q, want it to keep bad", got)
	}
	// A later take of another key rewrites the file and still keeps the failed one. (The
	// stage is busy, so that the reaper leaves the key to take.)
	r.touch()
	if err := r.put("third"); err != nil {
		t.Fatal(err)
	}
	if err := r.take(context.Background(), "third"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(dir, reapFile))
	if got := strings.Fields(string(data)); !slices.Equal(got, []string{"bad"}) {
		t.Fatalf("file after take: %q, want [bad]", got)
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if err := r.put("late"); err == nil {
		t.Fatal("put after close succeeded")
	}
	slices.Sort(calls)
	if !slices.Equal(calls, []string{"bad", "good", "third"}) {
		t.Fatalf("removals %v", calls)
	}
}

// TestReloadDoesNotSweepWorkInFlight checks that a second instance built beside a serving one
// (a reload) leaves the first one's work in progress alone, while a new process sweeps it.
func TestReloadDoesNotSweepWorkInFlight(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		root := t.TempDir()
		shared := &core.Shared{}
		env := core.Env{Root: root, Logger: hclog.NewNullLogger(), Images: s, Shared: shared}
		l, err := New(context.Background(), env, WithSnapshotter(drv))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		img := twoLayers(t, s)
		prepare(t, l, img)
		ctx := context.Background()
		// An unpack in progress in the serving instance.
		key := activeKey("sha256:" + strings.Repeat("b", 64))
		if _, err := l.main.sn.Prepare(ctx, key, img.ChainID); err != nil {
			t.Fatal(err)
		}
		l2, err := New(ctx, env, WithSnapshotter(drv))
		if err != nil {
			t.Fatal(err)
		}
		if !exists(t, l.main, key) {
			t.Fatal("a reload swept the serving instance's work in progress")
		}
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReaperWaitWhileRemoving calls wait (as PruneLayers does) while removals keep coming,
// and checks that every key is removed once and the file ends empty.
func TestReaperWaitWhileRemoving(t *testing.T) {
	dir := t.TempDir()
	var (
		mu      sync.Mutex
		removed = map[string]int{}
	)
	r, err := newReaper(dir, func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		removed[key]++
		return nil
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	r.backlog = 4
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 400 {
			if err := r.put(fmt.Sprint("k", i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		default:
			r.wait()
		}
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 400 {
		t.Fatalf("%d keys removed, want 400", len(removed))
	}
	for k, n := range removed {
		if n != 1 {
			t.Fatalf("%s removed %d times", k, n)
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, reapFile)); err != nil || len(data) != 0 {
		t.Fatalf("file after close: %q %v", data, err)
	}
}

// TestTakeWhileTheWorkerRemoves checks that a take that waits for the worker's removal of the
// key also leaves the file without the key, while other keys still wait.
func TestTakeWhileTheWorkerRemoves(t *testing.T) {
	dir := t.TempDir()
	started, release := make(chan struct{}), make(chan struct{})
	r, err := newReaper(dir, func(_ context.Context, key string) error {
		if key == "slow" {
			close(started)
			<-release
		}
		return nil
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if err := r.put("slow"); err != nil {
		t.Fatal(err)
	}
	<-started // the worker is removing "slow"
	r.touch() // and waits for a pause before it takes "other"
	if err := r.put("other"); err != nil {
		t.Fatal(err)
	}
	took := make(chan error, 1)
	go func() { took <- r.take(context.Background(), "slow") }()
	close(release)
	if err := <-took; err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, reapFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data)); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("file after take: %q, want [other]", got)
	}
}
