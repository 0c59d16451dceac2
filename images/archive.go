package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// compression is the compression of a stream, found by its magic bytes.
type compression int

const (
	uncompressed compression = iota
	gzipped
	zstded
	bzipped
	xzed
)

func sniff(b []byte) compression {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return gzipped
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return zstded
	case bytes.HasPrefix(b, []byte("BZh")):
		return bzipped
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return xzed
	}
	return uncompressed
}

// layerMediaType is the OCI media type of a layer blob with compression c.
func (c compression) layerMediaType() string {
	switch c {
	case gzipped:
		return ocispec.MediaTypeImageLayerGzip
	case zstded:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// decompress returns r decompressed according to its magic bytes.
func decompress(r io.Reader) (io.ReadCloser, compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	c := sniff(magic)
	switch c {
	case gzipped:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, errdefs.InvalidArgument(fmt.Errorf("gzip: %w", err))
		}
		return zr, c, nil
	case zstded:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, c, errdefs.InvalidArgument(fmt.Errorf("zstd: %w", err))
		}
		return zr.IOReadCloser(), c, nil
	case bzipped:
		return io.NopCloser(bzip2.NewReader(br)), c, nil
	case xzed:
		return nil, c, errdefs.InvalidArgument(errors.New("xz-compressed content is not supported; decompress it first"))
	}
	return io.NopCloser(br), c, nil
}

// staged is one regular file of the archive, copied to the ingest directory.
type staged struct {
	path   string
	digest digest.Digest
	size   int64
}

// archive is a loaded tarball: its regular files staged on disk by cleaned path, and its
// links.
type archive struct {
	dir   string
	files map[string]*staged
	links map[string]string // cleaned path -> cleaned path it points at
	n     int
	// diffIDs caches the uncompressed digest of each layer blob checked in this load.
	diffIDs map[digest.Digest]layerInfo
}

type layerInfo struct {
	diffID   digest.Digest
	comp     compression
	unpacked int64
	// size is what the layer adds to an image's size as moby's overlay2 driver counts it
	// (pkg/directory.Size of the applied layer): the bytes of its regular files and the
	// length of its symlink targets; directories, devices, hard links and whiteouts count 0.
	size int64
}

// cleanName turns a tar entry name into a path relative to the archive root
// ("./manifest.json" -> "manifest.json"); "" for the root itself.
func cleanName(name string) string {
	p := path.Clean("/" + name)
	return p[1:]
}

// spool reads the tar stream r into dir.
func spool(ctx context.Context, dir string, r io.Reader) (*archive, error) {
	a := &archive{dir: dir, files: map[string]*staged{}, links: map[string]string{}, diffIDs: map[digest.Digest]layerInfo{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, errdefs.Canceled(err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: %w", err))
		}
		name := cleanName(hdr.Name)
		if name == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			a.n++
			er := &errReader{r: tr}
			p, d, size, err := writeStaged(dir, strconv.Itoa(a.n), er)
			if err != nil {
				if er.err != nil {
					return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: %s: %w", name, er.err))
				}
				return nil, errdefs.Internal(fmt.Errorf("stage %s: %w", name, err))
			}
			delete(a.links, name)
			a.files[name] = &staged{path: p, digest: d, size: size}
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir("/"+name), target)
			}
			delete(a.files, name)
			a.links[name] = cleanName(target)
		case tar.TypeLink:
			delete(a.files, name)
			a.links[name] = cleanName(hdr.Linkname)
		}
	}
	return a, nil
}

// get returns the staged file at p, following links.
func (a *archive) get(p string) (*staged, bool) {
	p = cleanName(p)
	for range 32 {
		if f, ok := a.files[p]; ok {
			return f, true
		}
		t, ok := a.links[p]
		if !ok {
			return nil, false
		}
		p = t
	}
	return nil, false
}

func (a *archive) has(p string) bool {
	_, ok := a.get(p)
	return ok
}

// read returns the content of the (small) file at p.
func (a *archive) read(p string) ([]byte, error) {
	f, ok := a.get(p)
	if !ok {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: %s is missing", p))
	}
	return readStaged(f, p)
}

func readStaged(f *staged, what string) ([]byte, error) {
	if f.size > maxMetadata {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: %s is larger than %d bytes", what, maxMetadata))
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, errdefs.Internal(err)
	}
	return b, nil
}

// blob returns the staged blob of an OCI layout for desc, checked against the descriptor's
// digest and size; ok is false when the archive does not hold it.
func (a *archive) blob(desc ocispec.Descriptor) (f *staged, ok bool, err error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, false, errdefs.InvalidArgument(fmt.Errorf("invalid archive: invalid digest %q: %w", desc.Digest, err))
	}
	if desc.Digest.Algorithm() != digest.SHA256 {
		return nil, false, errdefs.InvalidArgument(fmt.Errorf("invalid archive: unsupported digest algorithm in %s", desc.Digest))
	}
	f, ok = a.get(path.Join(ocispec.ImageBlobsDir, string(desc.Digest.Algorithm()), desc.Digest.Encoded()))
	if !ok {
		return nil, false, nil
	}
	if err := verify(f, desc); err != nil {
		return nil, true, err
	}
	return f, true, nil
}

// verify checks a staged file against a descriptor.
func verify(f *staged, desc ocispec.Descriptor) error {
	if f.digest != desc.Digest {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: blob %s does not match its digest: its content hashes to %s", desc.Digest, f.digest))
	}
	if desc.Size != f.size {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: blob %s has size %d, its descriptor says %d", desc.Digest, f.size, desc.Size))
	}
	return nil
}

// layer computes (once per load) the uncompressed digest, compression, unpacked size and
// content size of a staged layer. progress, when not nil, is told how many bytes of the
// staged blob were read.
func (a *archive) layer(ctx context.Context, f *staged, progress func(current int64)) (layerInfo, error) {
	if li, ok := a.diffIDs[f.digest]; ok {
		return li, nil
	}
	file, err := os.Open(f.path)
	if err != nil {
		return layerInfo{}, errdefs.Internal(err)
	}
	defer file.Close()
	var in io.Reader = file
	var pr *countingReader
	if progress != nil {
		pr = &countingReader{r: file, report: progress, total: f.size}
		in = pr
	}
	rc, comp, err := decompress(in)
	if err != nil {
		return layerInfo{}, fmt.Errorf("layer %s: %w", f.digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(ctxReader{ctx, rc}, h)}
	size := contentSize(cr)
	// The tar reader stops at the end-of-archive marker (or a fault): hash what follows too.
	_, err = io.Copy(io.Discard, cr)
	if err == nil {
		err = cr.err
	}
	if err != nil {
		if ctx.Err() != nil {
			return layerInfo{}, errdefs.Canceled(ctx.Err())
		}
		return layerInfo{}, errdefs.InvalidArgument(fmt.Errorf("invalid archive: layer %s: %w", f.digest, err))
	}
	if pr != nil && pr.last < f.size {
		progress(f.size) // the decompressor may leave trailing bytes unread: show it complete
	}
	li := layerInfo{diffID: digest.NewDigest(digest.SHA256, h), comp: comp, unpacked: cr.n, size: size}
	a.diffIDs[f.digest] = li
	return li, nil
}

// contentSize reads a layer tar up to its end and returns the size moby's overlay2 driver
// gives the applied layer. It stops at the first fault without reporting it: the diffID
// check, not this, decides whether a layer is valid.
func contentSize(r io.Reader) int64 {
	tr := tar.NewReader(r)
	var size int64
	for {
		hdr, err := tr.Next()
		if err != nil {
			return size
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			if !isWhiteout(hdr.Name) {
				size += hdr.Size
			}
		case tar.TypeSymlink:
			size += int64(len(hdr.Linkname))
		}
	}
}

// isWhiteout reports whether a layer entry is an OCI whiteout (".wh.NAME", ".wh..wh..opq"),
// which unpacks to no file.
func isWhiteout(name string) bool {
	return strings.HasPrefix(path.Base(name), ".wh.")
}

// countingReader counts the bytes read, remembers a read error other than EOF, and reports
// the count to report (when set) as moby's progress reader does: every 1% of total or
// 512 KiB, whichever is less, at most every 100ms, and always at the end.
type countingReader struct {
	r      io.Reader
	n      int64
	err    error
	report func(current int64)
	last   int64
	lastAt time.Time
	total  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	if c.report != nil && n > 0 {
		every := int64(512 << 10)
		if c.total > 0 && c.total/100 < every {
			every = c.total / 100
		}
		if c.n-c.last > every && (c.n == c.total || time.Since(c.lastAt) >= 100*time.Millisecond) {
			c.report(c.n)
			c.last, c.lastAt = c.n, time.Now()
		}
	}
	return n, err
}

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// errReader remembers the error its reader returned, to tell a broken archive from a full disk.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
