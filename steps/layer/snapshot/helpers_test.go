package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// entry is one member of a test layer tarball.
type entry struct {
	name string
	typ  byte // tar.TypeReg when 0
	body string
	mode int64
	link string
}

func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) entry { return entry{name: name, body: body, mode: 0o644} }
func symlink(name, link string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: link, mode: 0o777}
}

// layerTar writes entries as an uncompressed tar stream, as `docker save` stores a layer.
func layerTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// blobStore is a real core.ImageService seam: blobs by digest from a map, counting opens.
type blobStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
	opens atomic.Int64
	// gate, when set, makes OpenBlob tell entered and wait until gate is closed.
	gate, entered chan struct{}
}

func newBlobStore() *blobStore { return &blobStore{blobs: map[string][]byte{}} }

func (s *blobStore) Resolve(context.Context, string, *ocispec.Platform) (*spec.Image, error) {
	return nil, errdefs.NotFound(fmt.Errorf("resolve is not served by the test blob store"))
}

func (s *blobStore) OpenBlob(_ context.Context, dgst string) (io.ReadCloser, error) {
	s.mu.Lock()
	b, ok := s.blobs[dgst]
	s.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFound(fmt.Errorf("blob %s: not found", dgst))
	}
	s.opens.Add(1)
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// image stores the layers (uncompressed tar streams, stored gzipped) and returns the image
// the image stage would resolve.
func (s *blobStore) image(t testing.TB, layers ...[]byte) *spec.Image {
	t.Helper()
	img := &spec.Image{Ref: "test", ID: sha([]byte(t.Name()))}
	var diffs []digest.Digest
	for _, l := range layers {
		c := gz(t, l)
		d := sha(c)
		s.mu.Lock()
		s.blobs[d] = c
		s.mu.Unlock()
		img.Layers = append(img.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.Digest(d), Size: int64(len(c))})
		img.DiffIDs = append(img.DiffIDs, sha(l))
		diffs = append(diffs, digest.Digest(sha(l)))
	}
	if len(diffs) > 0 {
		img.ChainID = identity.ChainID(diffs).String()
	}
	return img
}

// newID returns a fresh 64-hex container ID.
func newID(t testing.TB) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// needRoot skips a test that needs mounts and chown when not run as root; CI runs as root,
// so these tests always run there.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the snapshotters mount and chown (CI runs this as root)")
	}
}

// drivers are the snapshotters every behavioural test runs with: the automatic choice
// (overlayfs on a host that supports it) and native forced.
var drivers = []string{DriverAuto, DriverNative}

func forEachDriver(t *testing.T, f func(t *testing.T, drv string)) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			needRoot(t)
			f(t, d)
		})
	}
}

// open builds the stage on root with the blob store.
func open(t testing.TB, root string, store *blobStore, drv string) *Layerer {
	t.Helper()
	return openWith(t, root, store, WithSnapshotter(drv))
}

func openWith(t testing.TB, root string, store *blobStore, opts ...Option) *Layerer {
	t.Helper()
	env := core.Env{Root: root, Logger: hclog.NewNullLogger()}
	if store != nil {
		env.Images = store
	}
	l, err := New(context.Background(), env, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}
