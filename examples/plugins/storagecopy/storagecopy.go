// Package storagecopy is an example layer stage plugin for Slipway: it prepares each
// container's root filesystem as a full copy of the image's layers, with containerd's native
// snapshotter, in a snapshot root of its own (from its config) instead of the engine's.
//
// Layer blobs are streamed from the engine's image store through the host callback
// OpenBlob (or, when the host offers no callbacks, read from the content store directory
// that the optional content setting names); each layer is unpacked once into a committed
// snapshot shared by every container of the image, and each container gets a copy of it as
// its read-write snapshot, keyed by the container ID. Undo removes that snapshot from the ID
// alone and never a shared layer, so it works after a crash of the plugin or of the engine.
// The stage also mounts and unmounts a container's root filesystem (slipway mount).
//
// The unpacking and snapshot bookkeeping are Slipway's own layer stage
// (steps/layer/snapshot) with the native driver, run inside the plugin process: the plugin
// shows how a storage backend moves out of the engine, with its own root, its own process
// and its own deadline.
//
// The binary is cmd/storagecopy; see README.md for how an operator builds, installs and
// selects it.
package storagecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/plugins/sdk"
	"github.com/slipwayhq/slipway/steps/layer/snapshot"
)

// Config is the plugin's config.
type Config struct {
	Root    string `json:"root" hcl:"root" doc:"directory of the plugin's own snapshots (the native snapshotter's root is ROOT/snapshots/native); created when missing"`
	Content string `json:"content,omitempty" hcl:"content,optional" doc:"only for hosts without callbacks: the engine's content store, <state root>/content, whose CONTENT/blobs/sha256 is read instead of streaming blobs from the host"`
	NoSync  bool   `json:"no_sync,omitempty" hcl:"no_sync,optional" doc:"do not fsync the snapshot metadata (tests)"`
}

// Layer is the layer stage.
type Layer struct {
	Config Config

	mu sync.Mutex
	l  *snapshot.Layerer
}

var (
	_ core.Layerer = (*Layer)(nil)
	_ core.Mounter = (*Layer)(nil)
)

// New returns a stage ready for Setup.
func New() *Layer { return &Layer{} }

// Setup checks the config and opens the native snapshotter under Root.
func (s *Layer) Setup(ctx context.Context, log hclog.Logger) error {
	c := s.Config
	switch {
	case c.Root == "" || !filepath.IsAbs(c.Root):
		return errdefs.InvalidArgument(fmt.Errorf("storagecopy: root %q must be an absolute directory", c.Root))
	case c.Content != "" && !filepath.IsAbs(c.Content):
		return errdefs.InvalidArgument(fmt.Errorf("storagecopy: content %q must be the absolute path of the engine's content store", c.Content))
	}
	var dir string
	if c.Content != "" {
		dir = filepath.Join(c.Content, "blobs", "sha256")
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return errdefs.InvalidArgument(fmt.Errorf("storagecopy: content %s is not a content store (no blobs/sha256 directory)", c.Content))
		}
	}
	// The host may kill the plugin without closing the stage: removals happen within Undo.
	opts := []snapshot.Option{snapshot.WithSnapshotter("native"), snapshot.WithoutReaper()}
	if c.NoSync {
		opts = append(opts, snapshot.WithNoSync())
	}
	l, err := snapshot.New(ctx, core.Env{Root: c.Root, Logger: log, Images: blobs{dir: dir}}, opts...)
	if err != nil {
		return fmt.Errorf("storagecopy: %w", err)
	}
	s.mu.Lock()
	s.l = l
	s.mu.Unlock()
	log.Info("storagecopy ready", "root", c.Root, "content", c.Content)
	return nil
}

func (s *Layer) layerer() (*snapshot.Layerer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l == nil {
		return nil, errdefs.FailedPrecondition(errors.New("storagecopy: not set up"))
	}
	return s.l, nil
}

// PrepareRootFS copies the image's layers into the container's snapshot.
func (s *Layer) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	l, err := s.layerer()
	if err != nil {
		return nil, err
	}
	return l.PrepareRootFS(ctx, rec)
}

// Undo removes the container's snapshot; it needs nothing but the ID.
func (s *Layer) Undo(ctx context.Context, rec *spec.Record) error {
	l, err := s.layerer()
	if err != nil {
		return err
	}
	return l.Undo(ctx, rec)
}

// Mount mounts the container's root filesystem below the plugin's root and returns where.
func (s *Layer) Mount(ctx context.Context, rec *spec.Record) (string, error) {
	l, err := s.layerer()
	if err != nil {
		return "", err
	}
	return l.Mount(ctx, rec)
}

// Unmount unmounts what Mount mounted; it is a no-op when nothing is mounted.
func (s *Layer) Unmount(ctx context.Context, rec *spec.Record) error {
	l, err := s.layerer()
	if err != nil {
		return err
	}
	return l.Unmount(ctx, rec)
}

// Close closes the snapshotter.
func (s *Layer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l == nil {
		return nil
	}
	err := s.l.Close()
	s.l = nil
	return err
}

// blobs reads layer blobs through the host's OpenBlob callback, or from a content store
// directory, read-only, when the call has no host callbacks and dir is set.
type blobs struct{ dir string }

func (b blobs) Resolve(ctx context.Context, ref string, platform *ocispec.Platform) (*spec.Image, error) {
	return nil, errdefs.FailedPrecondition(errors.New("storagecopy reads blobs only"))
}

// OpenBlob opens the blob with digest dgst; the unpacker checks every layer's content
// against the image's diff IDs.
func (b blobs) OpenBlob(ctx context.Context, dgst string) (io.ReadCloser, error) {
	if h, ok := sdk.HostFromContext(ctx); ok {
		return h.OpenBlob(ctx, dgst)
	}
	if b.dir == "" {
		return nil, errdefs.FailedPrecondition(fmt.Errorf("storagecopy: blob %s: the host offers no callbacks and no content directory is configured", dgst))
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("storagecopy: blob %q: %w", dgst, err))
	}
	if d.Algorithm() != digest.SHA256 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("storagecopy: blob %s: only sha256 blobs are stored", dgst))
	}
	f, err := os.Open(filepath.Join(b.dir, d.Encoded()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound(fmt.Errorf("storagecopy: blob %s is not in the content store", dgst))
	}
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("storagecopy: %w", err))
	}
	return f, nil
}
