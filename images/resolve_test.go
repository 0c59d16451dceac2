package images_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

// collidingImages returns two untagged images whose IDs share their first four hex digits.
func collidingImages(t *testing.T) (a, b imagetest.Image, prefix string) {
	seen := map[string]imagetest.Image{}
	for i := 0; ; i++ {
		img := imagetest.Image{Config: ocispec.ImageConfig{Labels: map[string]string{"n": fmt.Sprint(i)}}}
		p := encoded(build(t, img, false).ID)[:4]
		if prev, ok := seen[p]; ok {
			return prev, img, p
		}
		seen[p] = img
	}
}

func TestResolveReferences(t *testing.T) {
	s, _ := testStore(t)
	busybox := sampleImage("busybox")
	app := imagetest.Image{Tags: []string{"example.com/team/app:1.0"}, Config: ocispec.ImageConfig{Cmd: []string{"app"}}}
	untagged := imagetest.Image{Config: ocispec.ImageConfig{Cmd: []string{"untagged"}}}
	ca, cb, prefix := collidingImages(t)
	mustLoad(t, s, ociTar(t, imagetest.Options{}, busybox, app, untagged, ca, cb))
	bb := build(t, busybox, false)
	appID := build(t, app, false).ID
	unID := build(t, untagged, false).ID

	cases := []struct {
		ref      string
		wantID   string
		wantName string
		class    errdefs.Class
		msg      string
	}{
		{ref: "busybox", wantID: bb.ID, wantName: "docker.io/library/busybox:latest"},
		{ref: "busybox:latest", wantID: bb.ID, wantName: "docker.io/library/busybox:latest"},
		{ref: "library/busybox", wantID: bb.ID, wantName: "docker.io/library/busybox:latest"},
		{ref: "docker.io/library/busybox:latest", wantID: bb.ID, wantName: "docker.io/library/busybox:latest"},
		{ref: "index.docker.io/library/busybox", wantID: bb.ID, wantName: "docker.io/library/busybox:latest"},
		{ref: "busybox:1.0", class: errdefs.NotFoundClass, msg: "No such image: busybox:1.0"},
		{ref: "test456", class: errdefs.NotFoundClass, msg: "No such image: test456:latest"},
		{ref: "test456:v1", class: errdefs.NotFoundClass, msg: "No such image: test456:v1"},
		{ref: "example.com/team/app:1.0", wantID: appID, wantName: "example.com/team/app:1.0"},
		{ref: "example.com/team/app", class: errdefs.NotFoundClass, msg: "No such image: example.com/team/app:latest"},
		{ref: bb.ID, wantID: bb.ID},
		{ref: encoded(bb.ID), wantID: bb.ID},
		{ref: encoded(bb.ID)[:12], wantID: bb.ID},
		{ref: "sha256:" + encoded(bb.ID)[:12], wantID: bb.ID},
		{ref: unID, wantID: unID},
		{ref: encoded(unID)[:12], wantID: unID},
		{ref: "busybox@" + bb.ManifestDesc.Digest.String(), wantID: bb.ID, wantName: "docker.io/library/busybox@" + bb.ManifestDesc.Digest.String()},
		{ref: "busybox@" + bb.ID, wantID: bb.ID, wantName: "docker.io/library/busybox@" + bb.ID},
		{ref: "other@" + bb.ManifestDesc.Digest.String(), class: errdefs.NotFoundClass, msg: "No such image: other@" + bb.ManifestDesc.Digest.String()},
		{ref: bb.ManifestDesc.Digest.String(), wantID: bb.ID},
		{ref: "sha256:" + strings.Repeat("0", 64), class: errdefs.NotFoundClass, msg: "No such image: sha256:" + strings.Repeat("0", 64)},
		{ref: strings.Repeat("0", 64), class: errdefs.NotFoundClass, msg: "No such image: sha256:" + strings.Repeat("0", 64)},
		{ref: "busybox:" + encoded(bb.ID), class: errdefs.NotFoundClass, msg: "No such image: busybox:" + encoded(bb.ID)},
		{ref: "busybox:" + bb.ID, class: errdefs.InvalidArgumentClass, msg: "invalid reference format"},
		{ref: "Busybox", class: errdefs.InvalidArgumentClass, msg: "invalid reference format: repository name (library/Busybox) must be lowercase"},
		{ref: "", class: errdefs.InvalidArgumentClass, msg: "invalid reference format"},
		{ref: prefix, class: errdefs.NotFoundClass, msg: "No such image: " + prefix + ":latest"},
		{ref: encoded(bb.ID)[:3], class: errdefs.NotFoundClass, msg: "No such image: " + encoded(bb.ID)[:3] + ":latest"},
	}
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			img, err := s.Resolve(context.Background(), c.ref, nil)
			if c.class != errdefs.Unknown {
				if errdefs.ClassOf(err) != c.class || err.Error() != c.msg {
					t.Fatalf("error = %v (%v), want %v %q", err, errdefs.ClassOf(err), c.class, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != c.wantID || img.Name != c.wantName || img.Ref != c.ref {
				t.Errorf("ID, Name, Ref = %s, %q, %q; want %s, %q, %q", img.ID, img.Name, img.Ref, c.wantID, c.wantName, c.ref)
			}
		})
	}
}

func TestPlatformWarningAndMismatch(t *testing.T) {
	armImg := imagetest.Image{Tags: []string{"armimg"}, Platform: linuxARM64}
	amdImg := imagetest.Image{Tags: []string{"amdimg"}, Platform: linuxAMD64}
	cases := []struct {
		name     string
		host     ocispec.Platform
		ref      string
		platform *ocispec.Platform
		warnings []string
		err      string
	}{
		{"foreign image, no platform asked", linuxAMD64v2, "armimg", nil,
			[]string{"The requested image's platform (linux/arm64) does not match the detected host platform (linux/amd64/v2) and no specific platform was requested"}, ""},
		{"host image", linuxAMD64v2, "amdimg", nil, nil, ""},
		{"host image on plain amd64 host", linuxAMD64, "amdimg", nil, nil, ""},
		{"amd64 image on arm64 host", linuxARM64, "amdimg", nil,
			[]string{"The requested image's platform (linux/amd64) does not match the detected host platform (linux/arm64) and no specific platform was requested"}, ""},
		{"foreign image, its platform asked", linuxAMD64v2, "armimg", &linuxARM64, nil, ""},
		{"arm64/v8 asked for arm64 image", linuxAMD64v2, "armimg", &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, nil, ""},
		{"wrong platform asked", linuxAMD64v2, "armimg", &linuxAMD64, nil,
			"image with reference armimg was found but does not match the specified platform: wanted linux/amd64, actual: linux/arm64"},
		{"wrong OS asked", linuxAMD64v2, "amdimg", &ocispec.Platform{OS: "windows", Architecture: "amd64"}, nil,
			"image with reference amdimg was found but does not match the specified platform: wanted windows/amd64, actual: linux/amd64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := testStore(t, images.WithHostPlatform(c.host))
			mustLoad(t, s, ociTar(t, imagetest.Options{}, armImg, amdImg))
			img, err := s.Resolve(context.Background(), c.ref, c.platform)
			if c.err != "" {
				if !errdefs.IsNotFound(err) || err.Error() != c.err {
					t.Fatalf("error = %v, want NotFound %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(img.Warnings, c.warnings) {
				t.Errorf("warnings = %q, want %q", img.Warnings, c.warnings)
			}
		})
	}
}

func TestHostPlatform(t *testing.T) {
	p := images.HostPlatform()
	if p.OS == "" || p.Architecture == "" {
		t.Fatalf("host platform %+v", p)
	}
	if p.Architecture == "amd64" && !slices.Contains([]string{"v1", "v2", "v3", "v4"}, p.Variant) {
		t.Errorf("amd64 host without a microarchitecture level: %+v", p)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	ctr := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	nobody := func(string) (string, bool) { return "", false }

	t.Run("untag then delete", func(t *testing.T) {
		s, root := testStore(t)
		img := sampleImage("a:1", "a:2")
		id := mustLoad(t, s, ociTar(t, imagetest.Options{}, img)).Images[0].ID
		resp, err := s.Delete(ctx, "a:1", nobody)
		if err != nil {
			t.Fatal(err)
		}
		if want := []image.DeleteResponse{{Untagged: "a:1"}}; !slices.Equal(resp, want) {
			t.Errorf("delete a:1 = %+v, want %+v", resp, want)
		}
		if _, err := s.Resolve(ctx, "a:1", nil); !errdefs.IsNotFound(err) {
			t.Errorf("a:1 still resolves: %v", err)
		}
		if _, err := s.Resolve(ctx, "a:2", nil); err != nil {
			t.Errorf("a:2 gone with a:1: %v", err)
		}
		resp, err = s.Delete(ctx, "a:2", nobody)
		if err != nil {
			t.Fatal(err)
		}
		if want := []image.DeleteResponse{{Untagged: "a:2"}, {Deleted: id}}; !slices.Equal(resp, want) {
			t.Errorf("delete a:2 = %+v, want %+v", resp, want)
		}
		if list, _ := s.List(ctx); len(list) != 0 {
			t.Errorf("list after delete = %+v", list)
		}
		if b := blobFiles(t, root); len(b) != 0 {
			t.Errorf("blobs left after the last image went: %v", b)
		}
		if _, err := s.Delete(ctx, "a:2", nobody); !errdefs.IsNotFound(err) || err.Error() != "No such image: a:2" {
			t.Errorf("second delete: %v", err)
		}
	})

	t.Run("by ID with one repository", func(t *testing.T) {
		s, _ := testStore(t)
		id := mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("a:1"))).Images[0].ID
		resp, err := s.Delete(ctx, encoded(id)[:12], nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []image.DeleteResponse{{Untagged: "a:1"}, {Deleted: id}}; !slices.Equal(resp, want) {
			t.Errorf("delete = %+v, want %+v", resp, want)
		}
	})

	t.Run("by ID with several repositories", func(t *testing.T) {
		s, _ := testStore(t)
		id := mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("a:1", "b:1"))).Images[0].ID
		_, err := s.Delete(ctx, id, nobody)
		want := fmt.Sprintf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", encoded(id)[:12])
		if !errdefs.IsConflict(err) || err.Error() != want {
			t.Errorf("error = %v, want Conflict %q", err, want)
		}
	})

	t.Run("last name in use", func(t *testing.T) {
		s, _ := testStore(t)
		id := mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("a:1"))).Images[0].ID
		usedBy := func(imageID string) (string, bool) { return ctr, imageID == id }
		_, err := s.Delete(ctx, "a:1", usedBy)
		want := fmt.Sprintf(`conflict: unable to remove repository reference "a:1" (must force) - container 0123456789ab is using its referenced image %s`, encoded(id)[:12])
		if !errdefs.IsConflict(err) || err.Error() != want {
			t.Errorf("error = %v, want Conflict %q", err, want)
		}
		if _, err := s.Resolve(ctx, "a:1", nil); err != nil {
			t.Errorf("a refused delete changed the image: %v", err)
		}
	})

	t.Run("one of several names in use", func(t *testing.T) {
		s, _ := testStore(t)
		mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("a:1", "a:2")))
		resp, err := s.Delete(ctx, "a:1", func(string) (string, bool) { return ctr, true })
		if err != nil || !slices.Equal(resp, []image.DeleteResponse{{Untagged: "a:1"}}) {
			t.Errorf("untag with a container = %+v, %v", resp, err)
		}
	})

	t.Run("by ID in use", func(t *testing.T) {
		s, _ := testStore(t)
		id := mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage())).Images[0].ID
		_, err := s.Delete(ctx, id, func(imageID string) (string, bool) { return ctr, imageID == id })
		want := fmt.Sprintf("conflict: unable to delete %s (must be forced) - image is being used by stopped container 0123456789ab", encoded(id)[:12])
		if !errdefs.IsConflict(err) || err.Error() != want {
			t.Errorf("error = %v, want Conflict %q", err, want)
		}
	})

	t.Run("multi-platform in use by a platform's config", func(t *testing.T) {
		s, _ := testStore(t)
		arm := imagetest.Image{Platform: linuxARM64, Config: ocispec.ImageConfig{Cmd: []string{"arm"}}}
		amd := imagetest.Image{Platform: linuxAMD64, Config: ocispec.ImageConfig{Cmd: []string{"amd"}}}
		mustLoad(t, s, ociTar(t, imagetest.Options{}, imagetest.Index{Tags: []string{"m"}, Images: []imagetest.Image{amd, arm}}))
		armID := build(t, arm, false).ID
		_, err := s.Delete(ctx, "m", func(imageID string) (string, bool) { return ctr, imageID == armID })
		if !errdefs.IsConflict(err) {
			t.Errorf("error = %v, want Conflict", err)
		}
	})

	t.Run("shared layers stay", func(t *testing.T) {
		s, root := testStore(t)
		base := sampleImage("one")
		other := sampleImage("two")
		other.Config.Cmd = []string{"other"}
		mustLoad(t, s, ociTar(t, imagetest.Options{}, base, other))
		if _, err := s.Delete(ctx, "one", nil); err != nil {
			t.Fatal(err)
		}
		img, err := s.Resolve(ctx, "two", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range img.Layers {
			readBlob(t, s, l.Digest.String())
		}
		readBlob(t, s, img.ID)
		readBlob(t, s, img.Manifest.Digest.String())
		// config + manifest of "two" and the two shared layers.
		if n := len(blobFiles(t, root)); n != 4 {
			t.Errorf("%d blobs left, want 4", n)
		}
	})
}

func TestOpenBlob(t *testing.T) {
	s, root := testStore(t)
	mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("a")))
	img, err := s.Resolve(context.Background(), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenBlob(context.Background(), "sha256:"+strings.Repeat("1", 64)); !errdefs.IsNotFound(err) {
		t.Errorf("missing blob: %v", err)
	}
	if _, err := s.OpenBlob(context.Background(), "nonsense"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed digest: %v", err)
	}
	// A blob damaged on disk is reported when read to the end.
	p := filepath.Join(root, "content", "blobs", "sha256", encoded(img.Layers[0].Digest.String()))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := s.OpenBlob(context.Background(), img.Layers[0].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("reading a damaged blob: %v", err)
	}
}

func TestListAndInspect(t *testing.T) {
	s, _ := testStore(t)
	img := sampleImage("busybox", "example.com/app:1")
	img.Author = "someone"
	mustLoad(t, s, ociTar(t, imagetest.Options{LayerGzip: true}, img))
	b := build(t, img, true)
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("list = %+v", list)
	}
	sum := list[0]
	if sum.ID != b.ID || !slices.Equal(sum.RepoTags, []string{"busybox:latest", "example.com/app:1"}) ||
		!slices.Equal(sum.RepoDigests, []string{"busybox@" + b.ManifestDesc.Digest.String(), "example.com/app@" + b.ManifestDesc.Digest.String()}) ||
		sum.Created != imagetest.Epoch.Unix() || sum.Labels["org.example"] != "yes" || sum.Size <= 0 || sum.SharedSize != -1 || sum.Containers != -1 {
		t.Errorf("summary = %+v", sum)
	}
	ins, err := s.Inspect(context.Background(), "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if ins.ID != b.ID || ins.Os != "linux" || ins.Architecture != "amd64" || ins.Author != "someone" ||
		ins.Created != "2024-01-01T00:00:00Z" || ins.RootFS.Type != "layers" || !slices.Equal(ins.RootFS.Layers, b.DiffIDs) ||
		ins.Config == nil || ins.Config.WorkingDir != "/srv" || ins.Metadata.LastTagTime.IsZero() || ins.Size != sum.Size {
		t.Errorf("inspect = %+v", ins)
	}
	if _, err := s.Inspect(context.Background(), "nosuch"); !errdefs.IsNotFound(err) || err.Error() != "No such image: nosuch:latest" {
		t.Errorf("inspect missing: %v", err)
	}
}

func TestReopen(t *testing.T) {
	root := t.TempDir()
	open := func() (*images.Store, *bolt.DB) {
		db, err := bolt.Open(filepath.Join(root, "slipway.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := images.Factory(context.Background(), core.Env{Root: root, DB: db})
		if err != nil {
			t.Fatal(err)
		}
		return svc.(*images.Store), db
	}
	s, db := open()
	mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("persist")))
	db.Close()
	s, db = open()
	defer db.Close()
	img, err := s.Resolve(context.Background(), "persist", nil)
	if err != nil {
		t.Fatal(err)
	}
	readBlob(t, s, img.Layers[1].Digest.String())
}

func TestConcurrentResolveWhileLoading(t *testing.T) {
	s, _ := testStore(t)
	mustLoad(t, s, ociTar(t, imagetest.Options{}, sampleImage("base")))
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				img, err := s.Resolve(ctx, "base", nil)
				if err != nil {
					errs <- err
					return
				}
				if len(img.Layers) != 2 {
					errs <- fmt.Errorf("resolved %d layers", len(img.Layers))
					return
				}
				if _, err := s.List(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var loads sync.WaitGroup
	for i := range 6 {
		loads.Add(1)
		go func() {
			defer loads.Done()
			img := sampleImage(fmt.Sprintf("app:%d", i))
			img.Config.Cmd = []string{fmt.Sprint(i)}
			var archive []byte
			var buf bytes.Buffer
			if err := imagetest.WriteOCI(&buf, imagetest.Options{LayerGzip: i%2 == 0}, img); err != nil {
				errs <- err
				return
			}
			archive = buf.Bytes()
			if _, err := s.Load(ctx, bytes.NewReader(archive), images.LoadOptions{}); err != nil {
				errs <- err
			}
			if i%3 == 0 {
				if _, err := s.Delete(ctx, fmt.Sprintf("app:%d", i), nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	loads.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 6 {
		img, err := s.Resolve(ctx, fmt.Sprintf("app:%d", i), nil)
		if i%3 == 0 {
			if !errdefs.IsNotFound(err) {
				t.Errorf("app:%d was deleted but resolves: %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("app:%d: %v", i, err)
			continue
		}
		for _, l := range img.Layers {
			readBlob(t, s, l.Digest.String())
		}
	}
}

func FuzzLoad(f *testing.F) {
	small := imagetest.Image{Tags: []string{"f"}, Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/a", Content: []byte("a")}, imagetest.Whiteout("/b")}}}}
	for _, gz := range []bool{false, true} {
		var buf bytes.Buffer
		if err := imagetest.WriteOCI(&buf, imagetest.Options{Gzip: gz, LayerGzip: gz}, small); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		buf.Reset()
		if err := imagetest.WriteDockerSave(&buf, imagetest.Options{Gzip: gz}, small); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	var buf bytes.Buffer
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, imagetest.Index{Images: []imagetest.Image{small, {Platform: linuxARM64, Omit: true}}, Nested: true}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	s, _ := testStore(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := s.Load(context.Background(), bytes.NewReader(b), images.LoadOptions{})
		if err != nil {
			if c := errdefs.ClassOf(err); c != errdefs.InvalidArgumentClass && c != errdefs.NotFoundClass {
				t.Fatalf("load error of class %v: %v", c, err)
			}
			return
		}
		for _, li := range res.Images {
			if _, err := s.Resolve(context.Background(), li.ID, nil); err != nil {
				t.Fatalf("loaded image %s does not resolve: %v", li.ID, err)
			}
		}
	})
}

// TestChainID checks the chain ID against the OCI definition, computed by hand:
// chainID(1) = diffID(1), chainID(n) = sha256(chainID(n-1) + " " + diffID(n)).
func TestChainID(t *testing.T) {
	s, _ := testStore(t)
	img := sampleImage("c")
	img.Layers = append(img.Layers, imagetest.Layer{Files: []imagetest.File{{Path: "/third", Content: []byte("3")}}})
	mustLoad(t, s, ociTar(t, imagetest.Options{}, img))
	got, err := s.Resolve(context.Background(), "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	chain := got.DiffIDs[0]
	for _, d := range got.DiffIDs[1:] {
		sum := sha256.Sum256([]byte(chain + " " + d))
		chain = "sha256:" + hex.EncodeToString(sum[:])
	}
	if len(got.DiffIDs) != 3 || got.ChainID != chain {
		t.Errorf("ChainID = %s, want %s (diffIDs %v)", got.ChainID, chain, got.DiffIDs)
	}
	// An image without layers has no chain ID.
	mustLoad(t, s, ociTar(t, imagetest.Options{}, imagetest.Image{Tags: []string{"empty"}}))
	if e, err := s.Resolve(context.Background(), "empty", nil); err != nil || e.ChainID != "" || len(e.Layers) != 0 {
		t.Errorf("empty image = %+v, %v", e, err)
	}
}

// TestResolveCache checks that Resolve, which caches what it found, answers for the index
// as it is: after a load moved a tag, a tag and a delete, and with results that do not
// share what a caller could change.
func TestResolveCache(t *testing.T) {
	s, _ := testStore(t)
	ctx := context.Background()
	first := imagetest.Image{Tags: []string{"cached:1"}, Config: ocispec.ImageConfig{Cmd: []string{"one"}},
		Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/a", Content: []byte("a")}}}}}
	second := imagetest.Image{Tags: []string{"cached:1"}, Config: ocispec.ImageConfig{Cmd: []string{"two"}}}
	id1 := mustLoad(t, s, ociTar(t, imagetest.Options{}, first)).Images[0].ID
	a, err := s.Resolve(ctx, "cached:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Layers[0].Size, a.DiffIDs[0] = -1, "changed"
	a.Warnings = append(a.Warnings, "changed")
	b, err := s.Resolve(ctx, "cached:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != id1 || b.Layers[0].Size == -1 || b.DiffIDs[0] == "changed" || len(b.Warnings) != 0 || b.Manifest.Platform != &b.Platform {
		t.Fatalf("second resolve = %+v: it shares what the first caller changed", b)
	}
	id2 := mustLoad(t, s, ociTar(t, imagetest.Options{}, second)).Images[0].ID
	if c, err := s.Resolve(ctx, "cached:1", nil); err != nil || c.ID != id2 {
		t.Fatalf("after a load moved the tag: %v, %v; want %s", c, err, id2)
	}
	if _, _, err := s.Tag(ctx, id1, "cached:1"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Resolve(ctx, "cached:1", nil); err != nil || c.ID != id1 {
		t.Fatalf("after a tag moved it back: %v, %v; want %s", c, err, id1)
	}
	if _, err := s.Delete(ctx, "cached:1", func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "cached:1", nil); !errdefs.IsNotFound(err) {
		t.Fatalf("after the delete: %v, want NotFound", err)
	}
}
