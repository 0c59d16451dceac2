// Package fsutil holds file-system calls that the engine's packages share: a rename that
// never replaces its target in one system call, and the fsync of a directory that makes a
// rename durable.
package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// RenameNoReplace renames oldpath to newpath, failing with an error that matches
// fs.ErrExist when newpath exists, as os.Rename does for a directory. It asks the kernel
// (renameat2 with RENAME_NOREPLACE), where os.Rename first stats newpath: one system call
// instead of two, and no window between the check and the rename. Where the file system
// does not support the flag, it falls back to os.Rename. Errors are *os.LinkError.
func RenameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	for errors.Is(err, unix.EINTR) {
		err = unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		return os.Rename(oldpath, newpath)
	}
	return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
}

// SyncDir makes the entries of dir durable (the names created, renamed and removed in it):
// fsync of the directory, which a rename needs before what refers to its new name is
// committed.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
