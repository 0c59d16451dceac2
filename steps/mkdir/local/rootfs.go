package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/continuity/fs"
	securejoin "github.com/cyphar/filepath-securejoin"
	mounttypes "github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// rootfsDir is where the stage mounts a container's root filesystem while it makes the
// working directory and copies image content into new volumes, below the container root.
const rootfsDir = ".rootfs"

// workingDir returns the working directory to make, or "" when there is none to make.
func workingDir(rec *spec.Record) string {
	if rec.Merged == nil || rec.Merged.Config == nil || rec.Merged.Config.WorkingDir == "" {
		return ""
	}
	wd := filepath.Clean(rec.Merged.Config.WorkingDir)
	if wd == "/" {
		return ""
	}
	return wd
}

// needsCopy reports whether mp is a volume that takes the image's content: moby copies it
// into a volume that is empty when the container is created.
func needsCopy(mp *mountPoint) bool {
	if mp.Type != mounttypes.TypeVolume || !mp.copyData || mp.Source == "" {
		return false
	}
	f, err := os.Open(mp.Source)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

// prepareRootFS makes the working directory and copies image content into new volumes, with
// the root filesystem mounted below the container root; it mounts only when there is work.
func (d *DirMaker) prepareRootFS(rec *spec.Record, root string, mps []*mountPoint) (err error) {
	wd := workingDir(rec)
	var copies []*mountPoint
	for _, mp := range mps {
		if needsCopy(mp) {
			copies = append(copies, mp)
		}
	}
	if wd == "" && len(copies) == 0 {
		return nil
	}
	if rec.RootFS == nil || len(rec.RootFS.Mounts) == 0 {
		return errdefs.FailedPrecondition(fmt.Errorf("container %s has no root filesystem to prepare", rec.ID))
	}
	target := filepath.Join(root, rootfsDir)
	if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return errdefs.Internal(fmt.Errorf("make mount point of container %s: %w", rec.ID, err))
	}
	ms := make([]mount.Mount, 0, len(rec.RootFS.Mounts))
	for _, m := range rec.RootFS.Mounts {
		ms = append(ms, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if err := mount.All(ms, target); err != nil {
		os.Remove(target)
		return errdefs.Internal(fmt.Errorf("mount root filesystem of container %s: %w", rec.ID, err))
	}
	defer func() {
		if uerr := unmountRootFS(root); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	if wd != "" {
		if err := makeWorkingDir(target, wd, rec.Merged.Config.WorkingDir, d.rootUID, d.rootGID); err != nil {
			return err
		}
	}
	for _, mp := range copies {
		if err := copyUp(target, mp); err != nil {
			return err
		}
	}
	return nil
}

// unmountRootFS unmounts what prepareRootFS mounted below root and removes the mount point;
// nothing mounted is a success. Only Remove, never RemoveAll: should anything still be
// mounted, the container's files must not be deleted through it.
func unmountRootFS(root string) error {
	target := filepath.Join(root, rootfsDir)
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := mount.UnmountAll(target, unix.MNT_DETACH); err != nil {
		return errdefs.Internal(fmt.Errorf("unmount %s: %w", target, err))
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errdefs.Internal(fmt.Errorf("remove %s: %w", target, err))
	}
	return nil
}

// makeWorkingDir makes wd inside the root filesystem at rootfs as moby does: every missing
// directory is made 0755 and owned by the container's root; existing ones are left alone.
// Symbolic links are resolved inside rootfs, so no path reaches outside it.
func makeWorkingDir(rootfs, wd, raw string, uid, gid int) error {
	p, err := securejoin.SecureJoin(rootfs, wd)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("resolve working directory %s: %w", raw, err))
	}
	rel, err := filepath.Rel(rootfs, p)
	if err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) > 2 && rel[:3] == "../" {
		return errdefs.InvalidArgument(fmt.Errorf("working directory %s resolves outside the root filesystem", raw))
	}
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return errdefs.InvalidArgument(fmt.Errorf("Cannot mkdir: %s is not a directory", raw))
		}
		return nil
	}
	// Make the missing directories from the top, each one only once resolved again inside
	// rootfs: a component that is a symlink was resolved by SecureJoin already.
	cur := rootfs
	for _, part := range splitPath(rel) {
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			return errdefs.InvalidArgument(fmt.Errorf("Cannot mkdir: %s is not a directory", raw))
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(next, 0o755); err != nil {
				return errdefs.Internal(fmt.Errorf("make working directory %s: %w", raw, err))
			}
			if err := os.Chmod(next, 0o755); err != nil {
				return errdefs.Internal(fmt.Errorf("make working directory %s: %w", raw, err))
			}
			if err := os.Lchown(next, uid, gid); err != nil {
				return errdefs.Internal(fmt.Errorf("make working directory %s: %w", raw, err))
			}
		default:
			return errdefs.Internal(fmt.Errorf("make working directory %s: %w", raw, err))
		}
		cur = next
	}
	return nil
}

func splitPath(rel string) []string {
	var out []string
	for rel != "." && rel != "" {
		dir, base := filepath.Split(rel)
		out = append([]string{base}, out...)
		rel = filepath.Clean(dir)
		if dir == "" {
			break
		}
	}
	return out
}

// copyUp copies what the image has at mp.Destination into the volume, as moby's
// CopyImagePathContent does: nothing when the image has nothing there.
func copyUp(rootfs string, mp *mountPoint) error {
	src, err := securejoin.SecureJoin(rootfs, mp.Destination)
	if err != nil {
		return errdefs.Internal(fmt.Errorf("resolve %s in the root filesystem: %w", mp.Destination, err))
	}
	fi, err := os.Stat(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return errdefs.Internal(fmt.Errorf("copy image content at %s into volume %s: %w", mp.Destination, mp.Name, err))
	}
	if !fi.IsDir() {
		if mp.image {
			return errdefs.InvalidArgument(fmt.Errorf("cannot mount volume over existing file, file exists %s", src))
		}
		return nil
	}
	if err := fs.CopyDir(mp.Source, src, fs.WithAllowXAttrErrors()); err != nil {
		return errdefs.Internal(fmt.Errorf("copy image content at %s into volume %s: %w", mp.Destination, mp.Name, err))
	}
	return nil
}
