package images_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

func TestTag(t *testing.T) {
	ctx := context.Background()
	s, _ := testStore(t)
	first := sampleImage("example.com/app:1")
	second := imagetest.Image{Tags: []string{"other:1"}, Config: ocispec.ImageConfig{Cmd: []string{"two"}}}
	id1 := mustLoad(t, s, ociTar(t, imagetest.Options{}, first)).Images[0].ID
	id2 := mustLoad(t, s, ociTar(t, imagetest.Options{}, second)).Images[0].ID
	tags := func() map[string][]string {
		t.Helper()
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, sum := range list {
			out[sum.ID] = slices.Sorted(slices.Values(sum.RepoTags))
		}
		return out
	}
	before, err := s.Inspect(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}

	// A new name, by reference and by ID; a repository without a tag gets "latest".
	for _, tc := range []struct{ ref, name, want string }{
		{"example.com/app:1", "example.com/app:2", "example.com/app:2"},
		{id1[len("sha256:"):][:12], "myapp", "myapp:latest"},
		{id1, "docker.io/library/myapp:3", "myapp:3"},
	} {
		id, name, err := s.Tag(ctx, tc.ref, tc.name)
		if err != nil || id != id1 || name != tc.want {
			t.Errorf("Tag(%s, %s) = %s, %s, %v; want %s, %s", tc.ref, tc.name, id, name, err, id1, tc.want)
		}
		if r, err := s.Resolve(ctx, tc.want, nil); err != nil || r.ID != id1 {
			t.Errorf("%s resolves to %+v, %v; want %s", tc.want, r, err, id1)
		}
	}
	if got, want := tags(), map[string][]string{
		id1: {"example.com/app:1", "example.com/app:2", "myapp:3", "myapp:latest"},
		id2: {"other:1"},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("tags = %v, want %v", got, want)
	}
	after, _ := s.Inspect(ctx, id1)
	if !after.Metadata.LastTagTime.After(before.Metadata.LastTagTime) {
		t.Errorf("LastTagTime %v not after %v", after.Metadata.LastTagTime, before.Metadata.LastTagTime)
	}

	// A name another image holds moves: that image keeps its other names, or none.
	if _, _, err := s.Tag(ctx, "other:1", "myapp:3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Tag(ctx, "myapp:3", "example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Tag(ctx, "myapp:3", "other:1"); err != nil { // its own name: no change
		t.Fatal(err)
	}
	if got, want := tags(), map[string][]string{
		id1: {"example.com/app:2", "myapp:latest"},
		id2: {"example.com/app:1", "myapp:3", "other:1"},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("tags after the moves = %v, want %v", got, want)
	}
	if _, _, err := s.Tag(ctx, "other:1", "example.com/app:2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Tag(ctx, "other:1", "myapp:latest"); err != nil {
		t.Fatal(err)
	}
	if got := tags()[id1]; len(got) != 0 {
		t.Errorf("image that lost its last name: %v, want it kept without names", got)
	}

	// The event, as moby logs it.
	ev := s.TagEvent(ctx, id1, "example.com/app:9")
	if ev.Type != "image" || ev.Action != images.ActionTag || ev.ID != id1 || ev.Attrs["name"] != "example.com/app:9" || ev.Attrs["org.example"] != "yes" {
		t.Errorf("tag event %+v", ev)
	}

	// Errors, with moby's texts.
	for _, tc := range []struct {
		ref, name string
		class     errdefs.Class
		msg       string
	}{
		{"other:1", "Bad", errdefs.InvalidArgumentClass, "invalid reference format: repository name (library/Bad) must be lowercase"},
		{"other:1", "app@sha256:" + id1[7:], errdefs.InvalidArgumentClass, "cannot import digest reference"},
		{"other:1", "sha256", errdefs.InvalidArgumentClass, "refusing to create an ambiguous tag using digest algorithm as name"},
		{"other:1", "app:bad tag", errdefs.InvalidArgumentClass, "invalid reference format"},
		{"nosuch", "app:1", errdefs.NotFoundClass, "No such image: nosuch:latest"},
	} {
		_, _, err := s.Tag(ctx, tc.ref, tc.name)
		if errdefs.ClassOf(err) != tc.class || err == nil || err.Error() != tc.msg {
			t.Errorf("Tag(%s, %s) = %v (%v), want %v %q", tc.ref, tc.name, err, errdefs.ClassOf(err), tc.class, tc.msg)
		}
	}
}
