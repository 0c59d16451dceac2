package images_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

var (
	linuxAMD64   = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxAMD64v2 = ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}
	linuxARM64   = ocispec.Platform{OS: "linux", Architecture: "arm64"}
	linuxARMv7   = ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
)

// testStore opens a store on a fresh root with a real bbolt database.
func testStore(t testing.TB, opts ...images.Option) (*images.Store, string) {
	t.Helper()
	root := t.TempDir()
	db, err := bolt.Open(filepath.Join(root, "slipway.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if len(opts) == 0 {
		opts = []images.Option{images.WithHostPlatform(linuxAMD64v2)}
	}
	s, err := images.New(context.Background(), core.Env{Root: root, DB: db}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func ociTar(t testing.TB, opts imagetest.Options, entries ...imagetest.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := imagetest.WriteOCI(&buf, opts, entries...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dockerTar(t testing.TB, opts imagetest.Options, imgs ...imagetest.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := imagetest.WriteDockerSave(&buf, opts, imgs...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustLoad(t testing.TB, s *images.Store, b []byte) images.LoadResult {
	t.Helper()
	res, err := s.Load(context.Background(), bytes.NewReader(b), images.LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

func build(t testing.TB, img imagetest.Image, layerGzip bool) *imagetest.Built {
	t.Helper()
	b, err := img.Build(layerGzip)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blobFiles lists the blob files of the content store.
func blobFiles(t testing.TB, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "content", "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// readBlob reads a blob through OpenBlob and checks that it hashes to its digest.
func readBlob(t testing.TB, s *images.Store, dgst string) []byte {
	t.Helper()
	rc, err := s.OpenBlob(context.Background(), dgst)
	if err != nil {
		t.Fatalf("OpenBlob(%s): %v", dgst, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read blob %s: %v", dgst, err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != dgst {
		t.Fatalf("blob %s hashes to %s", dgst, got)
	}
	return b
}

// rewrite corrupts an archive with imagetest.Rewrite.
func rewrite(t testing.TB, b []byte, fn func(name string, content []byte) ([]byte, bool)) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := imagetest.Rewrite(bytes.NewReader(b), &out, fn); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func encoded(dgst string) string { return strings.TrimPrefix(dgst, "sha256:") }

// sampleImage has two layers, the second with a whiteout and an opaque directory, and a
// full config.
func sampleImage(tags ...string) imagetest.Image {
	return imagetest.Image{
		Tags:     tags,
		Platform: linuxAMD64,
		Config: ocispec.ImageConfig{
			User:         "1000:1000",
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			Env:          []string{"PATH=/usr/bin:/bin", "APP=1"},
			Entrypoint:   []string{"/app"},
			Cmd:          []string{"serve"},
			Volumes:      map[string]struct{}{"/data": {}},
			WorkingDir:   "/srv",
			Labels:       map[string]string{"org.example": "yes"},
			StopSignal:   "SIGTERM",
		},
		Layers: []imagetest.Layer{
			{Files: []imagetest.File{
				imagetest.Dir("/etc"),
				{Path: "/etc/old.conf", Content: []byte("old")},
				imagetest.Dir("/var/cache"),
				{Path: "/var/cache/x", Content: []byte("x")},
				{Path: "/app", Content: []byte("#!/bin/true\n"), Mode: 0o755},
			}},
			{Files: []imagetest.File{
				imagetest.Whiteout("/etc/old.conf"),
				imagetest.Opaque("/var/cache"),
				{Path: "/etc/new.conf", Content: []byte("new")},
				imagetest.Symlink("/bin", "usr/bin"),
			}},
		},
	}
}
