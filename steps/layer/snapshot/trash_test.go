package snapshot

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// trashDirs makes n directories (with a file each) beside the trash, to be put in it.
func trashDirs(t *testing.T, root string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		d := filepath.Join(root, "snapshots", string(rune('a'+i)))
		if err := os.MkdirAll(filepath.Join(d, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "fs", "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func trashLen(t *testing.T, tr *trash) int {
	t.Helper()
	ents, err := os.ReadDir(tr.dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestTrashWaitsForAPause checks that the trash is not emptied while snapshots are being
// prepared or removed, is emptied after a pause, at once past its backlog, and at once when
// waited for.
func TestTrashWaitsForAPause(t *testing.T) {
	root := t.TempDir()
	tr, err := newTrash(root, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	busyFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			tr.touch()
		}
	}
	putAll := func(dirs []string) {
		tr.touch()
		for _, d := range dirs {
			if err := tr.put(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	putAll(trashDirs(t, root, 3))
	busyFor(3 * trashIdle)
	if n := trashLen(t, tr); n != 3 {
		t.Fatalf("trash emptied while busy: %d entries left of 3", n)
	}
	// A pause empties it.
	deadline := time.Now().Add(10 * time.Second)
	for trashLen(t, tr) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("trash not emptied %s after the last call", 10*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Past its backlog it is emptied while busy, down to the backlog.
	tr.mu.Lock() // the drain goroutine of the first part reads it under mu
	tr.backlog = 2
	tr.mu.Unlock()
	putAll(trashDirs(t, root, 5))
	busyFor(3 * trashIdle)
	if n := trashLen(t, tr); n != 1 {
		t.Fatalf("trash past its backlog of 2 while busy: %d entries, want 1", n)
	}
	// wait empties it at once, busy or not.
	tr.touch()
	start := time.Now()
	tr.wait()
	if n := trashLen(t, tr); n != 0 {
		t.Fatalf("trash after wait: %d entries", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("wait took %s", d)
	}
}
