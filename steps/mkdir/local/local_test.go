package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/steps/mkdir/local"
)

func TestConformance(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	d := coretest.Build[core.DirMaker](t, env, local.Impl(local.WithRemappedRoot(os.Getgid())))
	coretest.TestUndoer(t, coretest.Effect{
		Do: func(ctx context.Context, rec *spec.Record) error {
			dirs, err := d.MakeDirs(ctx, rec)
			rec.Dirs = dirs
			return err
		},
		Undo:      d,
		NewRecord: func(t *testing.T) *spec.Record { return &spec.Record{ID: core.NewID()} },
		Gone: func(t *testing.T, rec *spec.Record) {
			if _, err := os.Stat(filepath.Join(env.Root, "containers", rec.ID)); !os.IsNotExist(err) {
				t.Errorf("container root still there: %v", err)
			}
		},
	})
}

func TestModesAndOwners(t *testing.T) {
	old := syscall.Umask(0o077) // a strict umask must not change the modes
	defer syscall.Umask(old)
	env, _ := coretest.NewEnv(t)
	gid := 4242
	if os.Geteuid() != 0 {
		gid = os.Getgid()
	}
	d := coretest.Build[core.DirMaker](t, env, local.Impl(local.WithRemappedRoot(gid)))
	rec := &spec.Record{ID: core.NewID()}
	dirs, err := d.MakeDirs(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{dirs.Root, 0o710, os.Getuid(), gid},
		{dirs.Checkpoints, 0o700, os.Getuid(), os.Getegid()},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != tc.mode || int(st.Uid) != tc.uid || int(st.Gid) != tc.gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", tc.path, fi.Mode().Perm(), st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
	}
	if dirs.Root != filepath.Join(env.Root, "containers", rec.ID) || dirs.Checkpoints != filepath.Join(dirs.Root, "checkpoints") {
		t.Errorf("dirs = %+v", dirs)
	}
	if _, err := d.MakeDirs(t.Context(), &spec.Record{ID: "../escape"}); err == nil {
		t.Error("an ID with a path separator was accepted")
	}
}

// TestSpareRoots creates and removes containers through the engine-built stage, whose
// container roots come from the pool of ready-made ones once it has filled, and checks
// that every root has moby's modes and owners whichever way it was made, that a removed
// root is recycled into the pool, and that nothing is left in the containers directory.
func TestSpareRoots(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	gid := 4242
	if os.Geteuid() != 0 {
		gid = os.Getgid()
	}
	d := coretest.Build[core.DirMaker](t, env, local.Impl(local.WithRemappedRoot(gid)))
	pool := filepath.Join(env.Root, "containers.spare", fmt.Sprintf("%d.%d", os.Getuid(), gid))
	count := func() int {
		ents, err := os.ReadDir(pool)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	var recs []*spec.Record
	for i := 0; i < 40; i++ {
		rec := &spec.Record{ID: core.NewID()}
		dirs, err := d.MakeDirs(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		rec.Dirs = dirs
		recs = append(recs, rec)
		assertOwned(t, dirs.Root, 0o710, os.Getuid(), gid)
		assertOwned(t, dirs.Checkpoints, 0o700, os.Getuid(), os.Getegid())
		if ents, _ := os.ReadDir(dirs.Root); len(ents) != 1 {
			t.Fatalf("a new root holds %d entries, want only checkpoints", len(ents))
		}
		if i == 0 {
			time.Sleep(200 * time.Millisecond) // let the first refill finish
		}
	}
	d.(core.Closer).Close() // waits for a refill in flight
	before := count()
	if before == 0 {
		t.Fatal("the pool never filled")
	}
	for _, rec := range recs {
		if err := d.Undo(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(env.Root, "containers")); len(ents) != 0 {
		t.Fatalf("containers directory after undo of all: %d entries", len(ents))
	}
	if after := count(); after <= before {
		t.Errorf("pool holds %d after 40 removals, had %d: removed roots were not recycled", after, before)
	}
}

func assertOwned(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", path, fi.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
	}
}
