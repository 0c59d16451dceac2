package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// initEntry is one entry of moby's init layer.
type initEntry struct {
	path string
	kind string // "dir", "file", or the target of a symlink
}

// initEntries is moby's init layer (daemon/initlayer), in a fixed order.
var initEntries = []initEntry{
	{"/dev/pts", "dir"},
	{"/dev/shm", "dir"},
	{"/proc", "dir"},
	{"/sys", "dir"},
	{"/.dockerenv", "file"},
	{"/etc/resolv.conf", "file"},
	{"/etc/hosts", "file"},
	{"/etc/hostname", "file"},
	{"/dev/console", "file"},
	{"/etc/mtab", "/proc/mounts"},
}

// setupInitLayer writes the init layer's entries into root (the mounted init snapshot), as
// moby does: every component of each path is unlinked first (symlinks, files and devices
// go, directories stay), then what is missing is created, with missing parents made 0755;
// only what is created is given to uid:gid.
func setupInitLayer(root string, uid, gid int) error {
	for _, e := range initEntries {
		prev := root
		for _, part := range strings.Split(e.path, "/")[1:] {
			prev = filepath.Join(prev, part)
			// EISDIR for a directory and ENOENT for nothing are what we want.
			_ = unix.Unlink(prev)
		}
		full := filepath.Join(root, e.path)
		if _, err := os.Lstat(full); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init layer entry %s: %w", e.path, err)
		}
		if err := mkdirAllNew(root, filepath.Dir(e.path), uid, gid); err != nil {
			return err
		}
		switch e.kind {
		case "dir":
			if err := mkdirAllNew(root, e.path, uid, gid); err != nil {
				return err
			}
		case "file":
			f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o755)
			if err != nil {
				return fmt.Errorf("init layer entry %s: %w", e.path, err)
			}
			err = errors.Join(f.Chmod(0o755), f.Chown(uid, gid), f.Close())
			if err != nil {
				return fmt.Errorf("init layer entry %s: %w", e.path, err)
			}
		default:
			if err := os.Symlink(e.kind, full); err != nil {
				return fmt.Errorf("init layer entry %s: %w", e.path, err)
			}
			if err := os.Lchown(full, uid, gid); err != nil {
				return fmt.Errorf("init layer entry %s: %w", e.path, err)
			}
		}
	}
	return nil
}

// mkdirAllNew creates the directory rel (absolute inside root) and its missing parents, mode
// 0755 and owned by uid:gid; directories that exist are left alone. Components were
// unlinked before, so none is a symlink.
func mkdirAllNew(root, rel string, uid, gid int) error {
	p := root
	for _, part := range strings.Split(rel, "/")[1:] {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("init layer: %s is not a directory", strings.TrimPrefix(p, root))
			}
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init layer: %w", err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("init layer: %w", err)
		}
		if err := errors.Join(os.Chmod(p, 0o755), os.Lchown(p, uid, gid)); err != nil {
			return fmt.Errorf("init layer: %w", err)
		}
	}
	return nil
}
