package images

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/internal/fsutil"
)

// content is the content-addressed blob store below <root>/content.
type content struct {
	blobs  string // <root>/content/blobs/sha256
	ingest string // <root>/content/ingest
}

func openContent(root string) (*content, error) {
	c := &content{
		blobs:  filepath.Join(root, "content", "blobs", "sha256"),
		ingest: filepath.Join(root, "content", "ingest"),
	}
	// Leftovers of a load that was killed half-way: nothing refers to them.
	if err := os.RemoveAll(c.ingest); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("clean image ingest directory: %w", err))
	}
	for _, d := range []string{c.blobs, c.ingest} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, errdefs.Internal(fmt.Errorf("create image content directory: %w", err))
		}
	}
	return c, nil
}

// parseDigest accepts only sha256 digests, the only algorithm the store keeps.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errdefs.InvalidArgument(fmt.Errorf("invalid digest %q: %w", s, err))
	}
	if d.Algorithm() != digest.SHA256 {
		return "", errdefs.InvalidArgument(fmt.Errorf("unsupported digest algorithm %q in %s", d.Algorithm(), s))
	}
	return d, nil
}

func (c *content) path(d digest.Digest) string { return filepath.Join(c.blobs, d.Encoded()) }

func (c *content) exists(d digest.Digest) bool {
	_, err := os.Lstat(c.path(d))
	return err == nil
}

// open opens blob d; reading it to the end checks it against its digest.
func (c *content) open(d digest.Digest) (io.ReadCloser, error) {
	f, err := os.Open(c.path(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.NotFound(fmt.Errorf("blob %s: not found", d))
		}
		return nil, errdefs.Internal(fmt.Errorf("open blob %s: %w", d, err))
	}
	return &verifyingReader{f: f, want: d, h: sha256.New()}, nil
}

// readAll reads a small blob whole, refusing one larger than limit.
func (c *content) readAll(d digest.Digest, limit int64) ([]byte, error) {
	rc, err := c.open(d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errdefs.Internal(fmt.Errorf("blob %s is larger than %d bytes", d, limit))
	}
	return b, nil
}

// remove deletes blob d; a missing blob is not an error.
func (c *content) remove(d digest.Digest) error {
	if err := os.Remove(c.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errdefs.Internal(fmt.Errorf("remove blob %s: %w", d, err))
	}
	return nil
}

// stagingDir makes a fresh directory below ingest for one load.
func (c *content) stagingDir() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errdefs.Internal(err)
	}
	d := filepath.Join(c.ingest, "load-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(d, 0o700); err != nil {
		return "", errdefs.Internal(fmt.Errorf("create image ingest directory: %w", err))
	}
	return d, nil
}

// commit fsyncs the staged, already verified file and renames it into place as blob d. It
// reports whether it created the blob (false when the blob was there already).
func (c *content) commit(staged string, d digest.Digest) (bool, error) {
	if c.exists(d) {
		return false, nil
	}
	f, err := os.OpenFile(staged, os.O_RDWR, 0)
	if err != nil {
		return false, errdefs.Internal(fmt.Errorf("commit blob %s: %w", d, err))
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, errdefs.Internal(fmt.Errorf("commit blob %s: %w", d, err))
	}
	if err := os.Rename(staged, c.path(d)); err != nil {
		return false, errdefs.Internal(fmt.Errorf("commit blob %s: %w", d, err))
	}
	return true, nil
}

// syncDir makes the renames into the blob directory durable.
func (c *content) syncDir() error {
	if err := fsutil.SyncDir(c.blobs); err != nil {
		return errdefs.Internal(fmt.Errorf("sync blob directory: %w", err))
	}
	return nil
}

// writeStaged copies r into a new file in dir and returns its path, digest and size. It does
// not fsync: most staged files are never committed, and commit syncs those that are.
func writeStaged(dir, name string, r io.Reader) (path string, d digest.Digest, size int64, err error) {
	path = filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", "", 0, errdefs.Internal(fmt.Errorf("create staged blob: %w", err))
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", 0, err
	}
	return path, digest.NewDigest(digest.SHA256, h), size, nil
}

// verifyingReader checks a blob against its digest when it is read to the end.
type verifyingReader struct {
	f    *os.File
	want digest.Digest
	h    hash.Hash
	done bool
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && !v.done {
		v.done = true
		if got := digest.NewDigest(digest.SHA256, v.h); got != v.want {
			return n, errdefs.Internal(fmt.Errorf("blob %s is corrupt: its content hashes to %s", v.want, got))
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }
