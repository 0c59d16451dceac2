package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// An existing target, even an empty directory that rename(2) would replace, is refused.
	err := RenameNoReplace(a, b)
	var le *os.LinkError
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &le) || le.Old != a || le.New != b {
		t.Fatalf("rename onto an existing directory: %v, want an *os.LinkError matching fs.ErrExist", err)
	}
	if _, err := os.Stat(a); err != nil {
		t.Fatalf("source after the refused rename: %v", err)
	}
	if err := RenameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("source after the rename: %v, want it gone", err)
	}
	if fi, err := os.Stat(c); err != nil || !fi.IsDir() {
		t.Errorf("target after the rename: %v", err)
	}
	if err := RenameNoReplace(a, filepath.Join(dir, "d")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rename of a missing source: %v, want fs.ErrNotExist", err)
	}
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("SyncDir of a missing directory: %v, want fs.ErrNotExist", err)
	}
}
