// Package local is the built-in mkdir stage: it makes a container's directories under the
// state root as moby does, and resolves the container's mounts and volumes.
//
// The container root <root>/containers/<id> is made with mode 0710, owned by the engine's
// uid and the remapped root's gid (0 without user-namespace remapping), so that the remapped
// root can traverse it but not list it. Its checkpoints directory is made with mode 0700,
// owned by the engine's uid and gid.
//
// Then the stage resolves the container's mount points with moby's rules and messages
// (registerMountPoints): the mount points of --volumes-from containers first, then the binds
// (-v) and mounts (--mount), then an anonymous volume for every Config.Volumes entry (the
// image's VOLUMEs merged with the user's) that nothing covers. A named volume is made through
// the local volume store (package volumes) when missing; a --mount bind whose source does
// not exist is refused. When there is a working directory to make, or image content to copy
// into an empty volume, the stage mounts the container's root filesystem below the container
// root, makes Config.WorkingDir inside it (0755, owned by root, symbolic links resolved
// inside the root filesystem), copies the content and unmounts before it returns.
//
// Undo needs only the ID. It releases the container's volume references, then, by the undo's
// cause (core.UndoCauseOf): a rolled-back create removes every volume it made that nobody
// else uses (moby leaks them, issues #16285 and #22093); `rm` keeps the volumes; `rm -v`
// removes the container's anonymous volumes that nobody else uses. Named volumes are never
// removed by a removal. Last, it removes the container root with everything in it.
//
// Container roots are pooled (spare.go): a few ready-made roots wait in
// <root>/containers.spare, refilled in the background, and MakeDirs renames one into place
// instead of making two directories; Undo renames an untouched root back into the pool, or
// any other root out of the containers directory for deletion in the background. Creating
// directories is what a create spends most of its time on once many files were deleted on
// an ext4 filesystem, and a rename allocates no inode. The pool holds no container state:
// the next process adopts its spares and deletes its trash.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/volumes"
)

// Name is the implementation name recorded in containers.
const Name = "local"

// Option configures the stage.
type Option func(*DirMaker)

// WithRemappedRoot sets the gid that owns container roots and the directories the stage
// makes inside the root filesystem (the working directory): the remapped root's gid when
// user namespaces are remapped.
func WithRemappedRoot(gid int) Option { return func(d *DirMaker) { d.gid, d.rootGID = gid, gid } }

// WithRemappedRootUID sets the uid that owns the directories the stage makes inside the
// root filesystem: the remapped root's uid when user namespaces are remapped, as moby
// makes the working directory with the container's root identity.
func WithRemappedRootUID(uid int) Option { return func(d *DirMaker) { d.rootUID = uid } }

// WithVolumes sets the volume store the stage makes and references volumes in.
func WithVolumes(s *volumes.Store) Option { return func(d *DirMaker) { d.vols = s } }

// WithHost sets where --volumes-from containers are looked up.
func WithHost(h core.Host) Option { return func(d *DirMaker) { d.host = h } }

// Impl returns the built-in mkdir stage, with the engine's volume store.
func Impl(opts ...Option) core.Impl {
	return core.Impl{Stage: spec.StageMkdir, Name: Name, New: func(ctx context.Context, env core.Env) (any, error) {
		o := []Option{WithHost(env.Host)}
		if env.DB != nil {
			vs, err := volumes.Open(ctx, env)
			if err != nil {
				return nil, err
			}
			o = append(o, WithVolumes(vs))
		}
		d, err := New(filepath.Join(env.Root, "containers"), append(o, opts...)...)
		if err != nil || env.Shared == nil {
			return d, err
		}
		// Every instance of one engine with the same owners shares one pool.
		key := fmt.Sprintf("mkdir/spares/%s/%d.%d", d.dir, d.uid, d.gid)
		v, err := env.Shared.Get(key, func() (any, error) {
			log := env.Logger
			if log == nil {
				log = hclog.NewNullLogger()
			}
			return newSpares(d.dir+".spare", d.uid, d.gid, spareRoots, log.Named("mkdir"))
		})
		if err != nil {
			return nil, errdefs.Internal(fmt.Errorf("spare container roots: %w", err))
		}
		d.spares = v.(*spares)
		return d, nil
	}}
}

// spareRoots is how many ready-made container roots the stage keeps (see spares).
const spareRoots = 16

// DirMaker is the built-in mkdir stage.
type DirMaker struct {
	dir  string
	uid  int
	gid  int
	vols *volumes.Store
	host core.Host
	// rootUID and rootGID own the directories made inside the root filesystem.
	rootUID, rootGID int
	// spares, when set, holds ready-made container roots: see spare.go.
	spares *spares
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
	if d.spares == nil || !d.spares.take(root) {
		if err := mkdirAndChown(root, 0o710, d.uid, d.gid); err != nil {
			return nil, err
		}
		if err := mkdirAndChown(cp, 0o700, d.uid, os.Getegid()); err != nil {
			return nil, err
		}
	}
	dirs := &spec.Dirs{Root: root, Checkpoints: cp}
	if rec.Merged == nil {
		return dirs, nil
	}
	mps, err := d.resolveMounts(ctx, rec)
	if err != nil {
		return nil, err
	}
	if err := d.prepareRootFS(rec, root, mps); err != nil {
		return nil, err
	}
	for _, mp := range mps {
		dirs.Mounts = append(dirs.Mounts, mp.MountPoint)
	}
	return dirs, nil
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

// Undo releases the volumes of rec.ID, removes those its cause says to remove (see the
// package doc), and removes the container root and everything in it.
func (d *DirMaker) Undo(ctx context.Context, rec *spec.Record) error {
	if rec.ID == "" || filepath.Base(rec.ID) != rec.ID {
		return errdefs.InvalidArgument(fmt.Errorf("invalid container ID %q", rec.ID))
	}
	root := d.Root(rec.ID)
	// A crash while the root filesystem was mounted for the working directory leaves it
	// mounted: unmount it before anything is removed below the root.
	errs := []error{unmountRootFS(root)}
	if d.vols != nil {
		errs = append(errs, d.undoVolumes(ctx, rec))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if d.spares != nil && (d.spares.put(root) || d.spares.discard(root)) {
		return nil // kept for the next create, or deleted in the background
	}
	if err := os.RemoveAll(root); err != nil {
		return errdefs.Internal(fmt.Errorf("remove directories of %s: %w", rec.ID, err))
	}
	return nil
}

// Close waits for a refill of the spare roots in flight.
func (d *DirMaker) Close() error {
	if d.spares != nil {
		d.spares.wait()
	}
	return nil
}

func (d *DirMaker) undoVolumes(ctx context.Context, rec *spec.Record) error {
	used := d.vols.Release(rec.ID)
	cause := core.UndoCauseOf(ctx)
	var errs []error
	switch {
	case !cause.Remove:
		// A rollback: the volumes this create made go, unless another container uses them.
		for _, v := range d.vols.CreatedBy(rec.ID) {
			if _, err := d.vols.RemoveIfUnused(ctx, v.Name, rec.ID); err != nil {
				errs = append(errs, err)
			}
		}
	case cause.RemoveVolumes:
		// rm -v: the container's anonymous volumes; named ones are never removed.
		names := map[string]bool{}
		if rec.Dirs != nil {
			for _, m := range rec.Dirs.Mounts {
				if m.Name != "" {
					names[m.Name] = true
				}
			}
		} else {
			for _, n := range used {
				names[n] = true
			}
			for _, v := range d.vols.CreatedBy(rec.ID) {
				names[v.Name] = true
			}
		}
		for name := range names {
			v, err := d.vols.Get(name)
			if err != nil || !v.Anonymous {
				continue
			}
			if _, err := d.vols.RemoveIfUnused(ctx, name, ""); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("volumes of %s: %w", rec.ID, err)
	}
	return nil
}
