package main

import (
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

// testImage is the tag of the image writeImage makes.
const testImage = "example.com/app:1"

// writeImage writes a two-layer OCI image tarball for the host's platform to path.
func writeImage(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	img := imagetest.Image{
		Tags:     []string{testImage},
		Platform: images.HostPlatform(),
		Config: ocispec.ImageConfig{
			Entrypoint:   []string{"/bin/app"},
			Cmd:          []string{"--serve"},
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_MODE=prod"},
			WorkingDir:   "/srv",
			Labels:       map[string]string{"org.example.app": "yes"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
		},
		Layers: []imagetest.Layer{
			{Files: []imagetest.File{
				{Path: "/bin/app", Content: []byte("#!/bin/sh\necho app\n"), Mode: 0o755},
				{Path: "/etc/app.conf", Content: []byte("mode=dev\n")},
				{Path: "/etc/old.conf", Content: []byte("old\n")},
				imagetest.Dir("/srv"),
			}},
			{Files: []imagetest.File{
				{Path: "/etc/app.conf", Content: []byte("mode=prod\n")},
				imagetest.Whiteout("/etc/old.conf"),
			}},
		},
	}
	if err := imagetest.WriteOCI(f, imagetest.Options{LayerGzip: true}, img); err != nil {
		return err
	}
	return f.Close()
}
