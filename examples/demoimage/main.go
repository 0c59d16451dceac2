// Command demoimage builds Slipway's demo image, slipway.dev/demo/hello:latest, as an OCI
// image layout tarball, without network access:
//
//	go run ./examples/demoimage -o hello.tar
//	slipway image load -i hello.tar
//
// It compiles the static program in ./hello (CGO_ENABLED=0) for linux and the chosen
// architecture and packs it in two layers: the first holds /hello, /etc/motd and
// /etc/removed.conf; the second adds /etc/demo.conf and whites out /etc/removed.conf, so the
// demo exercises whiteouts. The config sets Entrypoint ["/hello"], Cmd ["world"], PATH, a
// label and an exposed port.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/images/imagetest"
)

// Ref is the demo image's name.
const Ref = "slipway.dev/demo/hello:latest"

const helloPkg = "github.com/slipwayhq/slipway/examples/demoimage/hello"

func main() {
	out := flag.String("o", "hello.tar", "write the OCI layout tarball to `FILE`")
	arch := flag.String("arch", runtime.GOARCH, "build for linux/`ARCH`")
	gz := flag.Bool("gzip", false, "gzip the tarball and its layers")
	flag.Parse()
	if err := run(*out, *arch, *gz); err != nil {
		fmt.Fprintln(os.Stderr, "demoimage:", err)
		os.Exit(1)
	}
}

func run(out, arch string, gz bool) error {
	tmp, err := os.MkdirTemp("", "demoimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, helloPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", helloPkg, err)
	}
	hello, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img := Image(hello, arch)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := imagetest.WriteOCI(f, imagetest.Options{Gzip: gz, LayerGzip: gz}, img); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s, linux/%s)\n", out, Ref, arch)
	return nil
}

// Image is the demo image around the hello binary built for linux/arch.
func Image(hello []byte, arch string) imagetest.Image {
	return imagetest.Image{
		Tags:     []string{Ref},
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		Config: ocispec.ImageConfig{
			Entrypoint:   []string{"/hello"},
			Cmd:          []string{"world"},
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels:       map[string]string{"org.opencontainers.image.title": "slipway demo hello"},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			WorkingDir:   "/",
		},
		Layers: []imagetest.Layer{
			{Files: []imagetest.File{
				{Path: "/hello", Content: hello, Mode: 0o755},
				imagetest.Dir("/etc"),
				{Path: "/etc/motd", Content: []byte("Built by examples/demoimage.\n")},
				{Path: "/etc/removed.conf", Content: []byte("this file is whited out by the second layer\n")},
				imagetest.Dir("/tmp"),
			}},
			{Files: []imagetest.File{
				{Path: "/etc/demo.conf", Content: []byte("greeting=hello\n")},
				imagetest.Whiteout("/etc/removed.conf"),
			}},
		},
	}
}
