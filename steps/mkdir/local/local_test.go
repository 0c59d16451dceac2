package local_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

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
