// Package local is the built-in mkdir stage: it makes a container's directories under the
// state root as moby does.
//
// The container root <root>/containers/<id> is made with mode 0710, owned by the engine's
// uid and the remapped root's gid (0 without user-namespace remapping), so that the remapped
// root can traverse it but not list it. Its checkpoints directory is made with mode 0700,
// owned by the engine's uid and gid. Undo removes the container root with everything in it;
// it needs only the ID and succeeds when the directory is already gone.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the implementation name recorded in containers.
const Name = "local"

// Option configures the stage.
type Option func(*DirMaker)

// WithRemappedRoot sets the gid that owns container roots (the remapped root's gid when
// user namespaces are remapped).
func WithRemappedRoot(gid int) Option { return func(d *DirMaker) { d.gid = gid } }

// Impl returns the built-in mkdir stage.
func Impl(opts ...Option) core.Impl {
	return core.Impl{Stage: spec.StageMkdir, Name: Name, New: func(ctx context.Context, env core.Env) (any, error) {
		return New(filepath.Join(env.Root, "containers"), opts...)
	}}
}

// DirMaker is the built-in mkdir stage.
type DirMaker struct {
	dir string
	uid int
	gid int
}

var _ core.DirMaker = (*DirMaker)(nil)

// New returns a stage that makes container roots below dir.
func New(dir string, opts ...Option) (*DirMaker, error) {
	d := &DirMaker{dir: dir, uid: os.Getuid()}
	for _, o := range opts {
		o(d)
	}
	if err := os.MkdirAll(dir, 0o710); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("make containers directory: %w", err))
	}
	return d, nil
}

// Root returns the root directory of container id.
func (d *DirMaker) Root(id string) string { return filepath.Join(d.dir, id) }

// MakeDirs makes the container root and its checkpoints directory.
func (d *DirMaker) MakeDirs(ctx context.Context, rec *spec.Record) (*spec.Dirs, error) {
	if rec.ID == "" || filepath.Base(rec.ID) != rec.ID {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid container ID %q", rec.ID))
	}
	root := d.Root(rec.ID)
	cp := filepath.Join(root, "checkpoints")
	if err := mkdirAndChown(root, 0o710, d.uid, d.gid); err != nil {
		return nil, err
	}
	if err := mkdirAndChown(cp, 0o700, d.uid, os.Getegid()); err != nil {
		return nil, err
	}
	return &spec.Dirs{Root: root, Checkpoints: cp}, nil
}

// mkdirAndChown makes the leaf dir (an existing one is fine) and sets its mode and owner
// regardless of the umask, as moby's MkdirAndChown does.
func mkdirAndChown(path string, mode os.FileMode, uid, gid int) error {
	if err := os.Mkdir(path, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return errdefs.Internal(fmt.Errorf("make %s: %w", path, err))
	}
	if err := os.Chmod(path, mode); err != nil {
		return errdefs.Internal(fmt.Errorf("chmod %s: %w", path, err))
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return errdefs.Internal(fmt.Errorf("chown %s: %w", path, err))
	}
	return nil
}

// Undo removes the container root of rec.ID and everything in it.
func (d *DirMaker) Undo(ctx context.Context, rec *spec.Record) error {
	if rec.ID == "" || filepath.Base(rec.ID) != rec.ID {
		return errdefs.InvalidArgument(fmt.Errorf("invalid container ID %q", rec.ID))
	}
	if err := os.RemoveAll(d.Root(rec.ID)); err != nil {
		return errdefs.Internal(fmt.Errorf("remove directories of %s: %w", rec.ID, err))
	}
	return nil
}
