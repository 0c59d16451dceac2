package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"

	"github.com/moby/moby/api/types/image"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

// sizedImage has two layers whose content moby's overlay2 driver counts as 100 + 6
// ("target", the symlink's) + 0 (a hard link, a directory, a whiteout) + 50 bytes.
func sizedImage() imagetest.Image {
	img := sampleImage("example.com/sized:1")
	img.Layers = []imagetest.Layer{
		{Files: []imagetest.File{
			{Path: "/etc", Type: tar.TypeDir},
			{Path: "/etc/data", Content: bytes.Repeat([]byte("x"), 100)},
			{Path: "/etc/link", Type: tar.TypeSymlink, Linkname: "target"},
			{Path: "/etc/hard", Type: tar.TypeLink, Linkname: "etc/data"},
		}},
		{Files: []imagetest.File{
			{Path: "/etc/.wh.link", Content: nil},
			{Path: "/app", Content: bytes.Repeat([]byte("y"), 50), Mode: 0o755},
		}},
	}
	return img
}

func TestImageSize(t *testing.T) {
	const want = 156
	for _, layerGz := range []bool{false, true} {
		s, _ := testStore(t)
		img := sizedImage()
		res := mustLoad(t, s, ociTar(t, imagetest.Options{LayerGzip: layerGz}, img))
		built := build(t, img, layerGz)
		ctx := context.Background()
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Size != want {
			t.Errorf("layergzip=%v: List Size = %+v, want one image of %d bytes", layerGz, list, want)
		}
		ins, err := s.Inspect(ctx, "example.com/sized:1")
		if err != nil || ins.Size != want {
			t.Errorf("layergzip=%v: Inspect Size = %d, %v; want %d", layerGz, ins.Size, err, want)
		}
		// A container records the config digest as its image ID.
		for _, id := range []string{res.Images[0].ID, built.ID} {
			if n, err := s.ImageSize(ctx, id); err != nil || n != want {
				t.Errorf("layergzip=%v: ImageSize(%s) = %d, %v; want %d", layerGz, id, n, err, want)
			}
		}
	}
	s, _ := testStore(t)
	if _, err := s.ImageSize(context.Background(), "sha256:"+string(bytes.Repeat([]byte("0"), 64))); errdefs.ClassOf(err) != errdefs.NotFoundClass {
		t.Errorf("ImageSize of an unknown ID: %v, want NotFound", err)
	}
}

func TestLoadProgress(t *testing.T) {
	s, _ := testStore(t)
	img := sizedImage()
	built := build(t, img, true)
	tarball := ociTar(t, imagetest.Options{LayerGzip: true}, img)
	var got []images.LayerProgress
	opts := images.LoadOptions{Progress: func(p images.LayerProgress) { got = append(got, p) }}
	if _, err := s.Load(context.Background(), bytes.NewReader(tarball), opts); err != nil {
		t.Fatal(err)
	}
	// Per layer, in order: calls for its diffID only, growing, the last one complete.
	last := map[string]images.LayerProgress{}
	var order []string
	for _, p := range got {
		prev, seen := last[p.DiffID]
		if !seen {
			order = append(order, p.DiffID)
		} else if p.Current < prev.Current {
			t.Errorf("progress of %s went back: %d after %d", p.DiffID, p.Current, prev.Current)
		}
		last[p.DiffID] = p
	}
	if len(order) != len(built.DiffIDs) {
		t.Fatalf("progress for layers %v, want %v", order, built.DiffIDs)
	}
	for i, d := range built.DiffIDs {
		p := last[d]
		if order[i] != d || p.Total != built.LayerDescs[i].Size || p.Current != p.Total {
			t.Errorf("layer %d: last progress %+v (order %v), want diffID %s complete at %d", i, p, order, d, built.LayerDescs[i].Size)
		}
	}
	// Layers the store holds already are not loaded again, so not reported.
	got = nil
	if _, err := s.Load(context.Background(), bytes.NewReader(tarball), opts); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("second load reported %+v, want nothing", got)
	}
}

func TestImageEvents(t *testing.T) {
	s, _ := testStore(t)
	ctx := context.Background()
	res := mustLoad(t, s, ociTar(t, imagetest.Options{}, sizedImage()))
	id := res.Images[0].ID
	evs := s.LoadEvents(ctx, res)
	if len(evs) != 1 || evs[0].Type != "image" || evs[0].Action != images.ActionLoad || evs[0].ID != id ||
		evs[0].Attrs["name"] != id || evs[0].Attrs["org.example"] != "yes" {
		t.Errorf("load events %+v", evs)
	}
	resp := []image.DeleteResponse{{Untagged: "example.com/sized:1"}, {Deleted: id}}
	evs = images.DeleteEvents(id, map[string]string{"org.example": "yes"}, resp)
	if len(evs) != 2 ||
		evs[0].Action != images.ActionUntag || evs[0].ID != id || evs[0].Attrs["name"] != "example.com/sized:1" || evs[0].Attrs["org.example"] != "yes" ||
		evs[1].Action != images.ActionDelete || evs[1].ID != id || evs[1].Attrs["name"] != id || len(evs[1].Attrs) != 1 {
		t.Errorf("delete events %+v", evs)
	}
}
