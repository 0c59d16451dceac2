package local

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestSparesTakeAndPut(t *testing.T) {
	base, err := os.MkdirTemp("/var/tmp", "spares-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	uid, gid := os.Getuid(), 0
	// What an earlier process left: a spare cut short by a crash (no checkpoints, wrong
	// mode), which is adopted and set right when taken, and trash, which is deleted.
	own := fmt.Sprintf("%d.%d", uid, gid)
	half := filepath.Join(base, "pool", own, "s-dead-1")
	trash := filepath.Join(base, "pool", own, "t-dead-2", "checkpoints")
	for _, d := range []string{half, trash} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p, err := newSpares(filepath.Join(base, "pool"), uid, gid, 4, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	p.wait()
	if _, err := os.Stat(filepath.Dir(trash)); !os.IsNotExist(err) {
		t.Fatalf("trash of an earlier process survived: %v", err)
	}
	if len(p.ready) != 1 || !p.ready[0].adopted {
		t.Fatalf("pool after open: %+v, want the adopted spare", p.ready)
	}
	adopted := filepath.Join(base, "adopted")
	if !p.take(adopted) {
		t.Fatal("the adopted spare was not taken")
	}
	assertRoot(t, adopted, uid, gid)
	root := filepath.Join(base, "c1")
	p.wait()
	if got := len(p.ready); got != 4 {
		t.Fatalf("pool after refill holds %d, want 4", got)
	}
	if !p.take(root) {
		t.Fatal("no spare taken from a full pool")
	}
	assertRoot(t, root, uid, gid)
	p.wait()

	// A pristine root goes back; one with content, a wrong mode or an occupied target does not.
	before := len(p.ready)
	if !p.put(root) {
		t.Fatal("a pristine root was not recycled")
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("recycled root still in place: %v", err)
	}
	if len(p.ready) != before+1 {
		t.Fatalf("pool holds %d after put, want %d", len(p.ready), before+1)
	}
	if !p.take(root) {
		t.Fatal("no spare taken")
	}
	if err := os.WriteFile(filepath.Join(root, "checkpoints", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p.put(root) {
		t.Fatal("a root with content was recycled")
	}
	os.Remove(filepath.Join(root, "checkpoints", "x"))
	os.Chmod(root, 0o755)
	if p.put(root) {
		t.Fatal("a root with mode 0755 was recycled")
	}
	os.Chmod(root, 0o710)
	if err := os.WriteFile(filepath.Join(root, "config.v2.json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p.put(root) {
		t.Fatal("a root holding a file was recycled")
	}

	// Taking onto a non-empty root fails and drops the spare.
	p.wait()
	n := len(p.ready)
	if p.take(root) {
		t.Fatal("a spare replaced a non-empty root")
	}
	if ents, _ := os.ReadDir(p.dir); len(ents) != n-1 && len(ents) < n-1 {
		t.Errorf("pool directory holds %d entries, want at least %d", len(ents), n-1)
	}
	p.wait()
}

func assertRoot(t *testing.T, root string, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(root)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o710 || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("root %s: mode %o owner %d:%d", root, fi.Mode().Perm(), st.Uid, st.Gid)
	}
	fi, err = os.Lstat(filepath.Join(root, "checkpoints"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("checkpoints: %v %v", fi, err)
	}
}

// TestSparesDiscard checks that a root the pool does not keep is moved out at once and
// deleted in the background, content and all.
func TestSparesDiscard(t *testing.T) {
	base, err := os.MkdirTemp("/var/tmp", "spares-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	p, err := newSpares(filepath.Join(base, "pool"), os.Getuid(), 0, 0, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "c")
	if err := os.MkdirAll(filepath.Join(root, "checkpoints", "cp1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "config.v2.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p.put(root) {
		t.Fatal("a root with content was kept")
	}
	if !p.discard(root) {
		t.Fatal("discard failed")
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatalf("discarded root still in place: %v", err)
	}
	p.wait()
	if ents, err := os.ReadDir(p.dir); err != nil || len(ents) != 0 {
		t.Fatalf("pool directory after the background deletion: %v %v", ents, err)
	}
	if p.discard(filepath.Join(base, "missing")) {
		t.Error("discard of a missing root reported success")
	}
}
