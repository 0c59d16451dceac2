package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/slipwayhq/slipway/core/spec"
)

// TestPruneLayers unpacks two images that share their base layer, keeps one container of
// the second, and prunes as if the second image were deleted: nothing under the container
// goes; once the container is gone, the second image's own layer and init layer go, with
// their directories, and the shared base stays. A create of the pruned image afterwards
// unpacks it again although the stage had it cached as ready.
func TestPruneLayers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		s := newBlobStore()
		root := t.TempDir()
		l := open(t, root, s, drv)
		ctx := context.Background()
		base := layerTar(t, dir("bin/"), file("bin/sh", "#!shell"))
		a := s.image(t, base, layerTar(t, file("only-a", "a")))
		b := s.image(t, base, layerTar(t, file("only-b", "b")))
		if b.DiffIDs[0] != a.DiffIDs[0] {
			t.Fatalf("the images do not share their base layer: %s %s", a.DiffIDs[0], b.DiffIDs[0])
		}
		prepare(t, l, a)
		cb := prepare(t, l, b)

		keepA := chainSet(a)
		keep := func(c string) bool { return keepA[c] }
		removed, err := l.PruneLayers(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		if len(removed) != 0 {
			t.Fatalf("pruned %v while a container of the image lives", removed)
		}
		if err := l.Undo(ctx, cb); err != nil {
			t.Fatal(err)
		}
		before := dirCount(t, l)
		removed, err = l.PruneLayers(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{b.ChainID, initKey(b.ChainID)}
		slices.Sort(want)
		if !slices.Equal(removed, want) {
			t.Fatalf("pruned %v, want %v", removed, want)
		}
		committed, _ := snapshotNames(t, l)
		for _, k := range []string{a.DiffIDs[0], a.ChainID, initKey(a.ChainID)} {
			if !slices.Contains(committed, k) {
				t.Errorf("kept snapshot %s was removed; left %v", k, committed)
			}
		}
		if got := dirCount(t, l); got != before-2 {
			t.Errorf("snapshot directories: %d after pruning two of %d", got, before)
		}

		// Another instance of the stage (after a reload) still has b's layers cached as
		// ready: a create through it must unpack them again.
		for _, k := range want {
			l.ready.Store(k, struct{}{})
		}
		again := prepare(t, l, b)
		p, err := l.Mount(ctx, again)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(p, "only-b")); got != "b" {
			t.Errorf("only-b after re-unpacking = %q", got)
		}
		if err := l.Undo(ctx, again); err != nil {
			t.Fatal(err)
		}
		// With nothing kept and no container left, everything goes.
		if _, err := l.PruneLayers(ctx, func(string) bool { return false }); err != nil {
			t.Fatal(err)
		}
		if err := l.Undo(ctx, &spec.Record{ID: newID(t)}); err != nil {
			t.Fatal(err)
		}
	})
}

func chainSet(img *spec.Image) map[string]bool {
	ds := make([]digest.Digest, len(img.DiffIDs))
	for i, d := range img.DiffIDs {
		ds[i] = digest.Digest(d)
	}
	out := map[string]bool{}
	for _, c := range identity.ChainIDs(ds) {
		out[c.String()] = true
	}
	return out
}

// dirCount counts the snapshot directories of the main driver.
func dirCount(t *testing.T, l *Layerer) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(l.main.root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
