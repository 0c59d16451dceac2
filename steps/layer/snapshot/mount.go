package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/mount"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// mountPath is where Mount mounts the root filesystem of container id.
func (l *Layerer) mountPath(id string) string {
	return filepath.Join(l.root, "mounts", id)
}

// Mount mounts the root filesystem of rec (by rec.ID, with the driver recorded in
// rec.RootFS and the label of rec.Security) at <root>/snapshots/mounts/<id> and returns that
// path. Mounting a mounted one returns the path again. NotFound when the container has no
// snapshot.
func (l *Layerer) Mount(ctx context.Context, rec *spec.Record) (string, error) {
	if err := l.enter(); err != nil {
		return "", err
	}
	defer l.ops.Done()
	if err := checkID(rec.ID); err != nil {
		return "", err
	}
	target := l.mountPath(rec.ID)
	l.mountMu.Lock()
	defer l.mountMu.Unlock()
	if ok, err := isMounted(target); err != nil || ok {
		return target, err
	}
	ds, err := l.driversFor(rec)
	if err != nil {
		return "", err
	}
	var ms []mount.Mount
	for _, d := range ds {
		key, kerr := snapshotKey(d, rec)
		if kerr != nil {
			return "", kerr
		}
		if ms, err = d.sn.Mounts(ctx, key); err == nil {
			break
		}
		if !cerrdefs.IsNotFound(err) {
			return "", classify(err, "find root filesystem of container %s", rec.ID)
		}
	}
	if ms == nil {
		return "", errdefs.NotFound(fmt.Errorf("container %s has no root filesystem", rec.ID))
	}
	if rec.Security != nil {
		ms = withLabel(ms, rec.Security.MountLabel)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return "", errdefs.Internal(fmt.Errorf("create mount directory: %w", err))
	}
	if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", errdefs.Internal(fmt.Errorf("create mount point of container %s: %w", rec.ID, err))
	}
	if err := mount.All(ms, target); err != nil {
		_ = os.Remove(target)
		return "", errdefs.Internal(fmt.Errorf("mount root filesystem of container %s: %w", rec.ID, err))
	}
	return target, nil
}

// Unmount unmounts what Mount mounted for rec.ID and removes the mount point. Unmounting
// what is not mounted is a success.
func (l *Layerer) Unmount(ctx context.Context, rec *spec.Record) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.ops.Done()
	if err := checkID(rec.ID); err != nil {
		return err
	}
	return l.unmount(rec.ID)
}

func (l *Layerer) unmount(id string) error {
	target := l.mountPath(id)
	// The fast path of every Undo: no mount point, nothing mounted by Mount.
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	l.mountMu.Lock()
	defer l.mountMu.Unlock()
	if err := mount.UnmountAll(target, 0); err != nil {
		return errdefs.Internal(fmt.Errorf("unmount root filesystem of container %s: %w", id, err))
	}
	// Remove, not RemoveAll: should the unmount have missed something, the container's files
	// must not be deleted through the mount point.
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errdefs.Internal(fmt.Errorf("remove mount point of container %s: %w", id, err))
	}
	return nil
}

// isMounted reports whether something is mounted at target; false when target is missing.
func isMounted(target string) (bool, error) {
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	ok, err := mountinfo.Mounted(target)
	if err != nil {
		return false, errdefs.Internal(fmt.Errorf("check mount point %s: %w", target, err))
	}
	return ok, nil
}

// sweepMounts removes the mount points that are no longer mounted (after a reboot).
func (l *Layerer) sweepMounts() error {
	dir := filepath.Join(l.root, "mounts")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return errdefs.Internal(fmt.Errorf("list mount points: %w", err))
	}
	l.mountMu.Lock()
	defer l.mountMu.Unlock()
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if ok, err := isMounted(p); err != nil || ok {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, errdefs.Internal(fmt.Errorf("remove stale mount point: %w", err)))
		}
	}
	return errors.Join(errs...)
}
