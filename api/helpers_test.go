package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
	"github.com/slipwayhq/slipway/steps/standard"
)

const testImage = "example.com/app:1"

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating containers needs root for overlayfs snapshots (CI runs it as root)")
	}
}

// tempRoot is a state root under $SLIPWAY_TEST_ROOT or /var/tmp (much faster than /tmp on
// this machine), removed when the test ends unless $SLIPWAY_TEST_KEEP is set.
func tempRoot(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SLIPWAY_TEST_ROOT")
	if base == "" {
		base = "/var/tmp"
	}
	d, err := os.MkdirTemp(base, "slipway-api-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SLIPWAY_TEST_KEEP") == "" {
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	return d
}

// imageTar returns an OCI layout tarball of the test image.
func imageTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := imagetest.Image{
		Tags:     []string{testImage},
		Platform: images.HostPlatform(),
		Config:   ocispec.ImageConfig{Entrypoint: []string{"/bin/app"}, Cmd: []string{"--serve"}, Env: []string{"A=1"}, Labels: map[string]string{"from": "image"}},
		Layers: []imagetest.Layer{
			{Files: []imagetest.File{{Path: "/bin/app", Content: []byte("app"), Mode: 0o755}}},
		},
	}
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openEngine opens an engine with the default pipeline on a fresh root, with the test image
// loaded when load is set.
func openEngine(t testing.TB, load bool) *core.Engine {
	t.Helper()
	o := standard.Options(standard.Config{NoSync: true})
	o.Root = tempRoot(t)
	e, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if load {
		if _, err := e.Images().(*images.Store).Load(context.Background(), bytes.NewReader(imageTar(t)), images.LoadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// do sends one request to h and returns the response and its body.
func do(t testing.TB, h http.Handler, method, target, contentType, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}
