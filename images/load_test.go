package images_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

func TestLoadFormats(t *testing.T) {
	img := sampleImage("example.com/app:1", "busybox")
	img.Healthcheck = &dockerspec.HealthcheckConfig{Test: []string{"CMD", "true"}, Retries: 3}
	type format struct {
		name string
		make func(t testing.TB, o imagetest.Options) []byte
		// real is set when the archive carries a real manifest (OCI).
		real bool
	}
	formats := []format{
		{"oci", func(t testing.TB, o imagetest.Options) []byte { return ociTar(t, o, img) }, true},
		{"docker-save", func(t testing.TB, o imagetest.Options) []byte { return dockerTar(t, o, img) }, false},
		{"docker-save-blobs", func(t testing.TB, o imagetest.Options) []byte { o.DockerBlobs = true; return dockerTar(t, o, img) }, false},
		{"docker-save-dotslash", func(t testing.TB, o imagetest.Options) []byte { o.DotSlash = true; return dockerTar(t, o, img) }, false},
	}
	for _, f := range formats {
		for _, gz := range []bool{false, true} {
			for _, layerGz := range []bool{false, true} {
				name := fmt.Sprintf("%s/gzip=%v/layergzip=%v", f.name, gz, layerGz)
				t.Run(name, func(t *testing.T) {
					s, _ := testStore(t)
					want := build(t, img, layerGz)
					res := mustLoad(t, s, f.make(t, imagetest.Options{Gzip: gz, LayerGzip: layerGz}))
					wantLines := []string{"Loaded image: busybox:latest", "Loaded image: example.com/app:1"}
					slices.Sort(res.Lines)
					if !reflect.DeepEqual(res.Lines, wantLines) {
						t.Errorf("lines = %q, want %q", res.Lines, wantLines)
					}
					if len(res.Images) != 1 || res.Images[0].ID != want.ID {
						t.Fatalf("images = %+v, want one with ID %s", res.Images, want.ID)
					}
					got, err := s.Resolve(context.Background(), "example.com/app:1", nil)
					if err != nil {
						t.Fatal(err)
					}
					if got.ID != want.ID || got.ChainID != want.ChainID || !reflect.DeepEqual(got.DiffIDs, want.DiffIDs) {
						t.Errorf("ID/ChainID/DiffIDs = %s %s %v, want %s %s %v", got.ID, got.ChainID, got.DiffIDs, want.ID, want.ChainID, want.DiffIDs)
					}
					if got.Ref != "example.com/app:1" || got.Name != "example.com/app:1" {
						t.Errorf("Ref, Name = %q, %q", got.Ref, got.Name)
					}
					if !reflect.DeepEqual(got.Config.ImageConfig, img.Config) || !reflect.DeepEqual(got.Config.Healthcheck, img.Healthcheck) {
						t.Errorf("config = %+v, want %+v with healthcheck %+v", got.Config, img.Config, img.Healthcheck)
					}
					if got.Platform.OS != "linux" || got.Platform.Architecture != "amd64" || got.Manifest.Platform == nil {
						t.Errorf("platform = %+v, manifest platform %v", got.Platform, got.Manifest.Platform)
					}
					if len(got.Warnings) != 0 {
						t.Errorf("warnings = %q", got.Warnings)
					}
					if len(got.Layers) != 2 {
						t.Fatalf("layers = %d, want 2", len(got.Layers))
					}
					for i, l := range got.Layers {
						if l.Digest != want.LayerDescs[i].Digest || l.Size != want.LayerDescs[i].Size {
							t.Errorf("layer %d = %s/%d, want %s/%d", i, l.Digest, l.Size, want.LayerDescs[i].Digest, want.LayerDescs[i].Size)
						}
						wantMT := ocispec.MediaTypeImageLayer
						if layerGz {
							wantMT = ocispec.MediaTypeImageLayerGzip
						}
						if l.MediaType != wantMT {
							t.Errorf("layer %d media type %s, want %s", i, l.MediaType, wantMT)
						}
						if b := readBlob(t, s, l.Digest.String()); !bytes.Equal(b, want.Layers[i]) {
							t.Errorf("layer %d blob differs from the archive's", i)
						}
					}
					if f.real && got.Manifest.Digest != want.ManifestDesc.Digest {
						t.Errorf("manifest = %s, want %s", got.Manifest.Digest, want.ManifestDesc.Digest)
					}
					// The manifest is a blob in every case, even one the store made.
					mb := readBlob(t, s, got.Manifest.Digest.String())
					if !strings.Contains(string(mb), want.LayerDescs[1].Digest.String()) {
						t.Errorf("manifest does not list the layers: %s", mb)
					}
					readBlob(t, s, got.ID)
					ins, err := s.Inspect(context.Background(), "busybox")
					if err != nil {
						t.Fatal(err)
					}
					if ins.Config == nil || ins.Config.Healthcheck == nil || ins.Config.Healthcheck.Retries != 3 {
						t.Errorf("inspect config healthcheck = %+v", ins.Config)
					}
				})
			}
		}
	}
}

func TestLoadZstdArchive(t *testing.T) {
	s, _ := testStore(t)
	raw := ociTar(t, imagetest.Options{}, sampleImage("zst:1"))
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	mustLoad(t, s, buf.Bytes())
	if _, err := s.Resolve(context.Background(), "zst:1", nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadUntagged(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t testing.TB) []byte
	}{
		{"oci", func(t testing.TB) []byte { return ociTar(t, imagetest.Options{}, sampleImage()) }},
		{"docker-save", func(t testing.TB) []byte { return dockerTar(t, imagetest.Options{}, sampleImage()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := testStore(t)
			id := build(t, sampleImage(), false).ID
			res := mustLoad(t, s, tc.make(t))
			if want := []string{"Loaded image ID: " + id}; !reflect.DeepEqual(res.Lines, want) {
				t.Errorf("lines = %q, want %q", res.Lines, want)
			}
			list, err := s.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].ID != id || len(list[0].RepoTags) != 0 {
				t.Errorf("list = %+v", list)
			}
		})
	}
}

func TestLoadMultiPlatform(t *testing.T) {
	amd := imagetest.Image{Platform: linuxAMD64, Config: ocispec.ImageConfig{Cmd: []string{"amd"}}, Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/a", Content: []byte("amd")}}}}}
	arm64 := imagetest.Image{Platform: linuxARM64, Config: ocispec.ImageConfig{Cmd: []string{"arm64"}}, Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/a", Content: []byte("arm64")}}}}}
	armv7 := imagetest.Image{Platform: linuxARMv7, Config: ocispec.ImageConfig{Cmd: []string{"armv7"}}, Layers: []imagetest.Layer{{Files: []imagetest.File{{Path: "/a", Content: []byte("armv7")}}}}}
	ppc := imagetest.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "ppc64le"}, Omit: true}
	for _, nested := range []bool{false, true} {
		t.Run(fmt.Sprintf("nested=%v", nested), func(t *testing.T) {
			idx := imagetest.Index{Tags: []string{"multi:1"}, Images: []imagetest.Image{amd, arm64, armv7, ppc}, Nested: nested}
			s, _ := testStore(t, images.WithHostPlatform(linuxARM64))
			res := mustLoad(t, s, ociTar(t, imagetest.Options{LayerGzip: true}, idx))
			idxID, err := idx.IndexDigest(true)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Images) != 1 || res.Images[0].ID != idxID {
				t.Fatalf("loaded %+v, want ID %s", res.Images, idxID)
			}
			ctx := context.Background()
			cases := []struct {
				platform *ocispec.Platform
				cmd      string
				err      string
			}{
				{nil, "arm64", ""},
				{&linuxAMD64, "amd", ""},
				{&linuxAMD64v2, "amd", ""},
				{&linuxARMv7, "armv7", ""},
				{&ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v8"}, "armv7", ""},
				{&ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "", "image with reference multi:1 was found but does not match the specified platform: wanted linux/arm/v6, actual: linux/amd64, linux/arm64, linux/arm/v7"},
				{&ocispec.Platform{OS: "linux", Architecture: "ppc64le"}, "", "image with reference multi:1 was found but does not match the specified platform: wanted linux/ppc64le, actual: linux/amd64, linux/arm64, linux/arm/v7"},
			}
			for _, c := range cases {
				img, err := s.Resolve(ctx, "multi:1", c.platform)
				if c.err != "" {
					if !errdefs.IsNotFound(err) || err.Error() != c.err {
						t.Errorf("Resolve(%v) error = %v, want NotFound %q", c.platform, err, c.err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Resolve(%v): %v", c.platform, err)
					continue
				}
				if got := strings.Join(img.Config.Cmd, " "); got != c.cmd {
					t.Errorf("Resolve(%v) picked %q, want %q", c.platform, got, c.cmd)
				}
				if len(img.Warnings) != 0 {
					t.Errorf("Resolve(%v) warnings %q", c.platform, img.Warnings)
				}
				if img.ID == idxID || img.ID != build(t, map[string]imagetest.Image{"amd": amd, "arm64": arm64, "armv7": armv7}[c.cmd], true).ID {
					t.Errorf("Resolve(%v).ID = %s, want the platform's config digest", c.platform, img.ID)
				}
			}
			// The index digest is the image ID; each platform's config digest finds it too.
			for _, ref := range []string{idxID, encoded(idxID)[:12], "multi:1"} {
				if img, err := s.Resolve(ctx, ref, nil); err != nil || img.Config.Cmd[0] != "arm64" {
					t.Errorf("Resolve(%s) = %v, %v; want the arm64 image", ref, img, err)
				}
			}
			// A platform's config or manifest digest names that platform.
			armv7b := build(t, armv7, true)
			for _, ref := range []string{armv7b.ID, armv7b.ManifestDesc.Digest.String(), "multi@" + armv7b.ManifestDesc.Digest.String()} {
				if img, err := s.Resolve(ctx, ref, nil); err != nil || img.Config.Cmd[0] != "armv7" {
					t.Errorf("Resolve(%s) = %v, %v; want the armv7 image", ref, img, err)
				}
			}
			if _, err := s.Resolve(ctx, armv7b.ID, &linuxAMD64); !errdefs.IsNotFound(err) {
				t.Errorf("Resolve(armv7 config, amd64) = %v, want NotFound", err)
			}
		})
	}
}

func TestLoadPlatformFilter(t *testing.T) {
	amd := imagetest.Image{Platform: linuxAMD64, Config: ocispec.ImageConfig{Cmd: []string{"amd"}}}
	arm := imagetest.Image{Platform: linuxARM64, Config: ocispec.ImageConfig{Cmd: []string{"arm"}}}
	archive := ociTar(t, imagetest.Options{}, imagetest.Index{Tags: []string{"multi"}, Images: []imagetest.Image{amd, arm}})
	s, _ := testStore(t)
	res, err := s.Load(context.Background(), bytes.NewReader(archive), images.LoadOptions{Platforms: []ocispec.Platform{linuxARM64}})
	if err != nil {
		t.Fatal(err)
	}
	if want := build(t, arm, false).ID; len(res.Images) != 1 || res.Images[0].ID != want {
		t.Fatalf("loaded %+v, want the arm64 image %s", res.Images, want)
	}
	if _, err := s.Resolve(context.Background(), "multi", &linuxAMD64); !errdefs.IsNotFound(err) {
		t.Errorf("amd64 was loaded although filtered out: %v", err)
	}
	_, err = s.Load(context.Background(), bytes.NewReader(archive), images.LoadOptions{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}})
	if !errdefs.IsNotFound(err) {
		t.Errorf("load for a missing platform: %v, want NotFound", err)
	}
}

func TestLoadRefusesCorruptionAndIndexesNothing(t *testing.T) {
	img := sampleImage("bad:1")
	b := build(t, img, true)
	flip := func(target string) func(string, []byte) ([]byte, bool) {
		return func(name string, c []byte) ([]byte, bool) {
			if strings.HasSuffix(name, target) {
				c[len(c)/2] ^= 0xff
			}
			return c, true
		}
	}
	drop := func(target string) func(string, []byte) ([]byte, bool) {
		return func(name string, c []byte) ([]byte, bool) { return c, !strings.HasSuffix(name, target) }
	}
	badDiff := sampleImage("bad:1")
	badDiff.Layers[1].DiffID = digest.FromString("not the layer")
	cases := []struct {
		name    string
		archive func(t testing.TB) []byte
		want    string
	}{
		{"layer digest mismatch", func(t testing.TB) []byte {
			return rewrite(t, ociTar(t, imagetest.Options{LayerGzip: true}, img), flip(encoded(b.LayerDescs[1].Digest.String())))
		}, "does not match its digest"},
		{"config digest mismatch", func(t testing.TB) []byte {
			return rewrite(t, ociTar(t, imagetest.Options{LayerGzip: true}, img), flip(encoded(b.ID)))
		}, "does not match its digest"},
		{"manifest digest mismatch", func(t testing.TB) []byte {
			return rewrite(t, ociTar(t, imagetest.Options{LayerGzip: true}, img), flip(encoded(b.ManifestDesc.Digest.String())))
		}, "does not match its digest"},
		{"missing layer", func(t testing.TB) []byte {
			return rewrite(t, ociTar(t, imagetest.Options{LayerGzip: true}, img), drop(encoded(b.LayerDescs[0].Digest.String())))
		}, "is missing"},
		{"wrong diffID oci", func(t testing.TB) []byte { return ociTar(t, imagetest.Options{LayerGzip: true}, badDiff) }, "invalid diffID for layer 1"},
		{"wrong diffID docker-save", func(t testing.TB) []byte { return dockerTar(t, imagetest.Options{}, badDiff) }, "invalid diffID for layer 1"},
		{"corrupt docker-save layer", func(t testing.TB) []byte {
			return rewrite(t, dockerTar(t, imagetest.Options{}, img), flip("0-0/layer.tar"))
		}, "invalid diffID for layer 0"},
		{"truncated gzip layer", func(t testing.TB) []byte {
			return rewrite(t, dockerTar(t, imagetest.Options{LayerGzip: true}, img), func(name string, c []byte) ([]byte, bool) {
				if strings.HasSuffix(name, "0-1/layer.tar") {
					c = c[:len(c)-10]
				}
				return c, true
			})
		}, "invalid archive"},
		{"no manifest", func(t testing.TB) []byte {
			return rewrite(t, dockerTar(t, imagetest.Options{}, img), drop("manifest.json"))
		}, "invalid archive: does not contain a manifest.json"},
		{"not a tarball", func(t testing.TB) []byte {
			return []byte("hello, this is not a tar file at all, not even close; padding padding padding padding")
		}, "invalid archive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, root := testStore(t)
			// An image loaded before shares the first layer; the failed load must not touch it.
			keep := imagetest.Image{Tags: []string{"keep"}, Platform: linuxAMD64, Layers: img.Layers[:1]}
			mustLoad(t, s, ociTar(t, imagetest.Options{LayerGzip: true}, keep))
			before := blobFiles(t, root)

			_, err := s.Load(context.Background(), bytes.NewReader(tc.archive(t)), images.LoadOptions{})
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want InvalidArgument containing %q", err, tc.want)
			}
			list, err := s.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || !slices.Equal(list[0].RepoTags, []string{"keep:latest"}) {
				t.Errorf("after a failed load the store lists %+v", list)
			}
			if _, err := s.Resolve(context.Background(), "bad:1", nil); !errdefs.IsNotFound(err) {
				t.Errorf("bad:1 resolves after a failed load: %v", err)
			}
			if after := blobFiles(t, root); !slices.Equal(before, after) {
				t.Errorf("blobs changed by a failed load: %v -> %v", before, after)
			}
			kimg, err := s.Resolve(context.Background(), "keep", nil)
			if err != nil {
				t.Fatal(err)
			}
			readBlob(t, s, kimg.Layers[0].Digest.String())
		})
	}
}

func TestLoadMovesTag(t *testing.T) {
	s, _ := testStore(t)
	first := imagetest.Image{Tags: []string{"namedimage:latest"}, Config: ocispec.ImageConfig{Cmd: []string{"one"}}}
	second := imagetest.Image{Tags: []string{"namedimage:latest"}, Config: ocispec.ImageConfig{Cmd: []string{"two"}}}
	id1 := mustLoad(t, s, ociTar(t, imagetest.Options{}, first)).Images[0].ID
	res := mustLoad(t, s, ociTar(t, imagetest.Options{}, second))
	id2 := res.Images[0].ID
	if id1 == id2 {
		t.Fatal("both images have the same ID")
	}
	want := []string{
		"The image namedimage:latest already exists, renaming the old one with ID " + id1 + " to empty string",
		"Loaded image: namedimage:latest",
	}
	if !reflect.DeepEqual(res.Lines, want) {
		t.Errorf("lines = %q, want %q", res.Lines, want)
	}
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string][]string{}
	for _, sum := range list {
		tags[sum.ID] = sum.RepoTags
	}
	if !reflect.DeepEqual(tags, map[string][]string{id1: {}, id2: {"namedimage:latest"}}) {
		t.Errorf("tags after the move = %v", tags)
	}
	// Loading the same archive again changes nothing and says so as docker does.
	res = mustLoad(t, s, ociTar(t, imagetest.Options{}, second))
	if !reflect.DeepEqual(res.Lines, []string{"Loaded image: namedimage:latest"}) {
		t.Errorf("reload lines = %q", res.Lines)
	}
}

func TestLoadCanceled(t *testing.T) {
	s, _ := testStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Load(ctx, bytes.NewReader(ociTar(t, imagetest.Options{}, sampleImage("x"))), images.LoadOptions{})
	if !errdefs.IsCanceled(err) {
		t.Errorf("Load on a canceled context: %v, want Canceled", err)
	}
}
