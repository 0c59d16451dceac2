package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/archive"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/images"
)

// TestDemoImage builds the demo tarball as `go run ./examples/demoimage` does, loads it into
// a real store and checks the image and its whiteout layer.
func TestDemoImage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hello.tar")
	if err := run(out, runtime.GOARCH, true); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "slipway.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := images.New(context.Background(), core.Env{Root: dir, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := s.Load(context.Background(), f, images.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Loaded image: slipway.dev/demo/hello:latest"}; !slices.Equal(res.Lines, want) {
		t.Errorf("lines = %q, want %q", res.Lines, want)
	}
	img, err := s.Resolve(context.Background(), Ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(img.Config.Entrypoint, []string{"/hello"}) || !slices.Equal(img.Config.Cmd, []string{"world"}) ||
		len(img.Config.Env) != 1 || len(img.Config.Labels) != 1 || len(img.Config.ExposedPorts) != 1 {
		t.Errorf("config = %+v", img.Config)
	}
	if len(img.Layers) != 2 || len(img.Warnings) != 0 {
		t.Fatalf("layers = %d, warnings = %q", len(img.Layers), img.Warnings)
	}
	files := func(i int) []string {
		rc, err := s.OpenBlob(context.Background(), img.Layers[i].Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return names
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
		}
	}
	if l0 := files(0); !slices.Contains(l0, "hello") || !slices.Contains(l0, "etc/removed.conf") {
		t.Errorf("first layer = %q", l0)
	}
	if l1 := files(1); !slices.Equal(l1, []string{"etc/demo.conf", "etc/.wh.removed.conf"}) {
		t.Errorf("second layer = %q", l1)
	}

	// Unpack both layers as the layer stage does (containerd's apply, whiteouts and all)
	// and run the demo program in the result.
	if os.Getuid() != 0 {
		t.Skip("running the demo in a chroot needs root (CI runs as root)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the demo image is a linux image")
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		rc, err := s.OpenBlob(context.Background(), l.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Apply(context.Background(), rootfs, zr); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc", ".wh.removed.conf")); !os.IsNotExist(err) {
		t.Errorf("the whiteout entry itself was unpacked: %v", err)
	}
	cmd := exec.Command("/hello", "slipway")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Dir = "/"
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run /hello in the image: %v\n%s", err, got)
	}
	want := "hello, slipway\n/etc/demo.conf: greeting=hello\n/etc/removed.conf: whited out, as it should be\n"
	if string(got) != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}
