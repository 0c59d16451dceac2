package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// containerSize returns what moby's GetContainerLayerSize does for the container with that
// ID: SizeRw, the bytes in its read-write layer, and SizeRootFs, those plus the size of its
// image. For an overlay snapshot the read-write layer is the upper directory; a native
// snapshot is a full copy of the image, so its read-write layer is what it holds beyond the
// image's size. A container without a root filesystem (a dead one) has 0 and 0.
func (s *Server) containerSize(ctx context.Context, id string) (rw, rootfs int64, err error) {
	rec, err := s.eng.Record(ctx, id)
	if err != nil {
		if errdefs.ClassOf(err) == errdefs.NotFoundClass {
			return 0, 0, nil // a failed run listed as dead: it has no record
		}
		return 0, 0, err
	}
	if rec.State == "dead" || rec.RootFS == nil {
		return 0, 0, nil
	}
	var imageSize int64
	if rec.Image != nil {
		if st, err := s.imageStore(); err == nil {
			// An image in use cannot be removed; should it be gone anyway, it counts 0.
			if n, err := st.ImageSize(ctx, rec.Image.ID); err == nil {
				imageSize = n
			} else if errdefs.ClassOf(err) != errdefs.NotFoundClass {
				return 0, 0, err
			}
		}
	}
	data := rec.RootFS.Data
	switch {
	case data["UpperDir"] != "":
		rw, err = dirSize(ctx, data["UpperDir"])
		if err != nil {
			return 0, 0, fmt.Errorf("size of container %s: %w", id, err)
		}
		return rw, imageSize + rw, nil
	case data["Dir"] != "":
		rootfs, err = dirSize(ctx, data["Dir"])
		if err != nil {
			return 0, 0, fmt.Errorf("size of container %s: %w", id, err)
		}
		return max(rootfs-imageSize, 0), rootfs, nil
	}
	return 0, imageSize, nil
}

// dirSize is moby's pkg/directory.Size: the apparent size of everything below dir but
// directories, each inode counted once, entries that vanish during the walk ignored.
func dirSize(ctx context.Context, dir string) (int64, error) {
	seen := map[uint64]struct{}{}
	var size int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return errdefs.Canceled(err)
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if fi.Size() == 0 {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if _, dup := seen[st.Ino]; dup {
				return nil
			}
			seen[st.Ino] = struct{}{}
		}
		size += fi.Size()
		return nil
	})
	if err != nil && errdefs.ClassOf(err) == errdefs.Unknown {
		err = errdefs.Internal(err)
	}
	return size, err
}
