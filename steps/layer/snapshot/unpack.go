package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/sys/userns"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// initKey names the init layer of the image whose top chain ID is chainID.
func initKey(chainID string) string {
	if chainID == "" {
		return initEmpty
	}
	return initPrefix + chainID
}

// ensureImage makes sure every layer of img and its init layer are committed in the main
// driver, and returns the name of the init layer.
func (l *Layerer) ensureImage(ctx context.Context, img *spec.Image) (string, error) {
	key := initKey(img.ChainID)
	if _, ok := l.ready.Load(key); ok {
		return key, nil
	}
	chains, err := chainIDs(img)
	if err != nil {
		return "", err
	}
	err = l.once(ctx, key, func(ctx context.Context) error {
		if ok, err := l.committed(ctx, key); err != nil || ok {
			return err
		}
		for i := range chains {
			if err := l.ensureLayer(ctx, img, chains, i); err != nil {
				return err
			}
		}
		parent := ""
		if len(chains) > 0 {
			parent = chains[len(chains)-1]
		}
		return l.commitInit(ctx, key, parent)
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

// chainIDs computes the chain IDs of img's layers and checks them against what the image
// stage resolved.
func chainIDs(img *spec.Image) ([]string, error) {
	if len(img.Layers) != len(img.DiffIDs) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("image %s has %d layers and %d diff IDs", img.ID, len(img.Layers), len(img.DiffIDs)))
	}
	dgsts := make([]digest.Digest, len(img.DiffIDs))
	for i, s := range img.DiffIDs {
		d, err := digest.Parse(s)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("image %s: diff ID %d: %w", img.ID, i, err))
		}
		dgsts[i] = d
	}
	chains := make([]string, len(dgsts))
	for i, c := range identity.ChainIDs(dgsts) {
		chains[i] = c.String()
	}
	top := ""
	if len(chains) > 0 {
		top = chains[len(chains)-1]
	}
	if img.ChainID != top {
		return nil, errdefs.InvalidArgument(fmt.Errorf("image %s: chain ID %q does not match its diff IDs (%q)", img.ID, img.ChainID, top))
	}
	return chains, nil
}

// ensureLayer makes sure layer i of img is committed as chains[i]; the layers below must be.
func (l *Layerer) ensureLayer(ctx context.Context, img *spec.Image, chains []string, i int) error {
	key := chains[i]
	if _, ok := l.ready.Load(key); ok {
		return nil
	}
	return l.once(ctx, key, func(ctx context.Context) error {
		if ok, err := l.committed(ctx, key); err != nil || ok {
			return err
		}
		parent := ""
		if i > 0 {
			parent = chains[i-1]
		}
		return l.unpackLayer(ctx, img, i, key, parent)
	})
}

// once runs fn for key in one goroutine at a time per process and remembers its success.
// fn runs on a context detached from ctx's cancellation; a caller whose ctx ends stops
// waiting while fn goes on for the others.
func (l *Layerer) once(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	detached := context.WithoutCancel(ctx)
	ch := l.flights.DoChan(key, func() (any, error) {
		if _, ok := l.ready.Load(key); ok {
			return nil, nil
		}
		if err := l.enter(); err != nil {
			return nil, err
		}
		defer l.ops.Done()
		if err := fn(detached); err != nil {
			return nil, err
		}
		l.ready.Store(key, struct{}{})
		return nil, nil
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return errdefs.Canceled(fmt.Errorf("waiting for snapshot %s: %w", key, ctx.Err()))
	}
}

// committed reports whether a committed snapshot called name exists.
func (l *Layerer) committed(ctx context.Context, name string) (bool, error) {
	info, err := l.main.sn.Stat(ctx, name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		return false, classify(err, "look up snapshot %s", name)
	}
	if info.Kind != snapshots.KindCommitted {
		return false, errdefs.Internal(fmt.Errorf("snapshot %s exists but is not committed (%s)", name, info.Kind))
	}
	return true, nil
}

// activeKey returns a fresh key for work in progress on name.
func activeKey(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return extractPrefix + hex.EncodeToString(b[:]) + "-" + name
}

// build prepares an active snapshot on parent, lets fill write it, and commits it as name.
// On failure the active snapshot is removed and nothing is committed. A commit that finds
// name taken (another process won) is a success.
func (l *Layerer) build(ctx context.Context, name, parent string, fill func(ctx context.Context, ms []mount.Mount) error) (err error) {
	sn := l.main.sn
	key := activeKey(name)
	ms, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		return classify(err, "prepare snapshot %s", key)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		if rerr := l.main.removeActive(context.WithoutCancel(ctx), key, l.log); rerr != nil {
			l.log.Warn("removing unfinished snapshot failed; the next start removes it", "key", key, "error", rerr)
		}
	}()
	if err := fill(ctx, ms); err != nil {
		return err
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		if cerrdefs.IsAlreadyExists(err) {
			return nil
		}
		return classify(err, "commit snapshot %s", name)
	}
	committed = true
	return nil
}

// unpackLayer unpacks layer i of img into a new snapshot committed as name on parent.
func (l *Layerer) unpackLayer(ctx context.Context, img *spec.Image, i int, name, parent string) error {
	if l.images == nil {
		return errdefs.FailedPrecondition(errors.New("layer stage: no image store to read layers from"))
	}
	desc := img.Layers[i]
	want, err := digest.Parse(img.DiffIDs[i])
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("image %s: diff ID %d: %w", img.ID, i, err))
	}
	if !want.Algorithm().Available() {
		return errdefs.InvalidArgument(fmt.Errorf("image %s: diff ID %s: unsupported digest algorithm", img.ID, want))
	}
	return l.build(ctx, name, parent, func(ctx context.Context, ms []mount.Mount) error {
		rc, err := l.images.OpenBlob(ctx, desc.Digest.String())
		if err != nil {
			if errdefs.ClassOf(err) == errdefs.Unknown {
				err = errdefs.Internal(err)
			}
			return fmt.Errorf("open layer %s of image %s: %w", desc.Digest, img.ID, err)
		}
		defer rc.Close()
		ds, err := compression.DecompressStream(rc)
		if err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("layer %s of image %s: %w", desc.Digest, img.ID, err))
		}
		defer ds.Close()
		dg := want.Algorithm().Digester()
		r := io.TeeReader(ds, dg.Hash())
		if err := applyLayer(ctx, ms, r); err != nil {
			return classifyApply(fmt.Errorf("unpack layer %s of image %s: %w", desc.Digest, img.ID, err))
		}
		// The tar reader stops at the end-of-archive marker: hash the padding after it too.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return classifyApply(fmt.Errorf("read layer %s of image %s: %w", desc.Digest, img.ID, err))
		}
		if got := dg.Digest(); got != want {
			return errdefs.InvalidArgument(fmt.Errorf("layer %s of image %s does not match its diff ID: got %s, want %s", desc.Digest, img.ID, got, want))
		}
		return nil
	})
}

// classifyApply marks an unpack error: Canceled or Unavailable for the context, Internal
// for a fault of the host (no space, I/O), InvalidArgument for broken content.
func classifyApply(err error) error {
	if errdefs.ClassOf(err) != errdefs.Unknown {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return errdefs.Canceled(err)
	case errors.Is(err, context.DeadlineExceeded):
		return errdefs.Unavailable(err)
	}
	for _, e := range hostFaults {
		if errors.Is(err, e) {
			return errdefs.Internal(err)
		}
	}
	return errdefs.InvalidArgument(err)
}

// hostFaults are the errors of unpacking that are the host's fault, not the content's.
var hostFaults = []error{unix.ENOSPC, unix.EDQUOT, unix.EIO, unix.EROFS, unix.EMFILE, unix.ENFILE, unix.ENOMEM, unix.EPERM, unix.EACCES}

// applyLayer applies the uncompressed layer r to the active snapshot mounted by ms: straight
// into the overlay upper directory (whiteouts become overlay whiteouts) or the bind source,
// and through a temporary mount otherwise.
func applyLayer(ctx context.Context, ms []mount.Mount, r io.Reader) error {
	if len(ms) == 1 {
		m := ms[0]
		switch {
		case m.Type == "overlay" && !userns.RunningInUserNS():
			// mknod of an overlay whiteout needs the initial user namespace.
			var upper string
			var lowers []string
			for _, o := range m.Options {
				if v, ok := strings.CutPrefix(o, "upperdir="); ok {
					upper = v
				} else if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
					lowers = strings.Split(v, ":")
				}
			}
			if upper != "" {
				opts := []archive.ApplyOpt{archive.WithConvertWhiteout(archive.OverlayConvertWhiteout)}
				if len(lowers) > 0 {
					opts = append(opts, archive.WithParents(lowers))
				}
				_, err := archive.Apply(ctx, upper, r, opts...)
				return err
			}
		case m.Type == "bind" && m.Source != "":
			_, err := archive.Apply(ctx, m.Source, r)
			return err
		}
	}
	return mount.WithTempMount(ctx, ms, func(root string) error {
		_, err := archive.Apply(ctx, root, r)
		return err
	})
}

// commitInit builds the init layer name on parent (the image's top layer, or none).
func (l *Layerer) commitInit(ctx context.Context, name, parent string) error {
	return l.build(ctx, name, parent, func(ctx context.Context, ms []mount.Mount) error {
		// Through a real mount: the init function must see the image's entries (a symlinked
		// /etc/hostname, a regular /etc/mtab) to replace them, as moby's does.
		err := mount.WithTempMount(ctx, ms, func(root string) error {
			return setupInitLayer(root, l.opts.uid, l.opts.gid)
		})
		if err != nil {
			return errdefs.Internal(fmt.Errorf("write init layer %s: %w", name, err))
		}
		return nil
	})
}
