// Package imagetest builds real image tarballs in Go, for tests and examples: OCI image
// layouts (as `docker save` with the containerd store and `buildx --output type=oci` write
// them) and docker-save archives (as `docker save` with graph drivers writes them), plain or
// gzipped, with layers of arbitrary files including whiteouts, a full image config, any
// platform, multi-platform indexes and tags.
//
// The output is deterministic: the same images give the same bytes, so image IDs, digests
// and chain IDs can be computed up front with Image.Build.
//
//	img := imagetest.Image{
//		Tags:     []string{"example.com/app:1"},
//		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
//		Config:   ocispec.ImageConfig{Cmd: []string{"/app"}},
//		Layers: []imagetest.Layer{
//			{Files: []imagetest.File{{Path: "/app", Content: []byte("#!/bin/sh\n"), Mode: 0o755}}},
//			{Files: []imagetest.File{imagetest.Whiteout("/etc/old.conf")}},
//		},
//	}
//	var buf bytes.Buffer
//	err := imagetest.WriteOCI(&buf, imagetest.Options{Gzip: true}, img)
package imagetest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Epoch is the time stamp of every tar entry and the default Created time of an image.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of a layer.
type File struct {
	// Path is the path in the image ("/etc/app.conf" or "etc/app.conf").
	Path string
	// Type is the tar entry type: tar.TypeReg (the default), tar.TypeDir, tar.TypeSymlink,
	// tar.TypeLink, ...
	Type byte
	// Content is the content of a regular file.
	Content []byte
	// Mode is the permission bits; 0644 for files and 0755 for directories when zero.
	Mode int64
	// Linkname is the target of a symlink or hard link.
	Linkname string
	UID, GID int
}

// Whiteout is the entry that deletes p from the layers below: ".wh.<name>" beside it.
func Whiteout(p string) File {
	dir, base := path.Split(path.Clean("/" + p))
	return File{Path: path.Join(dir, ".wh."+base)}
}

// Opaque is the entry that hides everything the layers below have in directory dir
// ("<dir>/.wh..wh..opq"); files the same layer adds to dir stay.
func Opaque(dir string) File {
	return File{Path: path.Join("/", dir, ".wh..wh..opq")}
}

// Dir is a directory entry.
func Dir(p string) File { return File{Path: p, Type: tar.TypeDir} }

// Symlink is a symbolic link at p pointing at target.
func Symlink(p, target string) File { return File{Path: p, Type: tar.TypeSymlink, Linkname: target} }

// Layer is one layer: its files, in tar order.
type Layer struct {
	Files []File
	// DiffID, when set, is written to the config's rootfs.diff_ids instead of the layer's
	// real uncompressed digest, to make an image whose layer does not match its config.
	DiffID digest.Digest
}

// Image is one single-platform image.
type Image struct {
	// Tags name the image ("busybox", "example.com/app:1"); none leaves it untagged.
	Tags []string
	// Platform is the image's platform; linux/amd64 when OS and Architecture are empty.
	Platform ocispec.Platform
	// Config is the runtime config (Env, Cmd, Entrypoint, WorkingDir, Labels, ExposedPorts,
	// Volumes, User, StopSignal, ...).
	Config ocispec.ImageConfig
	// Healthcheck and Shell are Docker's extensions of the config.
	Healthcheck *dockerspec.HealthcheckConfig
	Shell       []string
	// Created is the creation time; Epoch when zero.
	Created time.Time
	Author  string
	Layers  []Layer
	// Omit, for an image inside an Index, lists it in the index but leaves its blobs out of
	// the archive, as `docker save --platform` does for the platforms not saved.
	Omit bool
}

// Index is a multi-platform image: an OCI image index over Images.
type Index struct {
	Tags   []string
	Images []Image
	// Nested puts the index inside another index (as BuildKit does with attestations).
	Nested bool
}

// Entry is an item of an OCI layout's index.json: an Image or an Index.
type Entry interface{ entry() }

func (Image) entry() {}
func (Index) entry() {}

// Options choose the shape of an archive.
type Options struct {
	// Gzip compresses the whole tarball.
	Gzip bool
	// LayerGzip gzips each layer blob (the default is plain tar layers).
	LayerGzip bool
	// DockerBlobs, for WriteDockerSave, puts the config and layers under blobs/sha256/ as
	// Docker 25 and later do (without oci-layout); otherwise <id>.json and <n>/layer.tar.
	DockerBlobs bool
	// DotSlash prefixes every entry name with "./" as download-frozen-image-v2.sh does.
	DotSlash bool
}

// Built is an image as it is written: its blobs and the digests a store will compute.
type Built struct {
	// ID is the config digest, the image ID a store gives a single-platform image.
	ID       string
	Config   []byte
	Manifest []byte
	// ManifestDesc describes Manifest, with the image's platform.
	ManifestDesc ocispec.Descriptor
	Layers       [][]byte
	LayerDescs   []ocispec.Descriptor
	// DiffIDs are the uncompressed layer digests (the real ones, not Layer.DiffID).
	DiffIDs []string
	// ChainID is the OCI chain ID of DiffIDs ("" with no layers).
	ChainID string
}

func (img Image) platform() ocispec.Platform {
	p := img.Platform
	if p.OS == "" && p.Architecture == "" {
		p.OS, p.Architecture = "linux", "amd64"
	}
	return p
}

// Build computes the image's blobs; layerGzip gzips its layers.
func (img Image) Build(layerGzip bool) (*Built, error) {
	b := &Built{}
	var diffIDs []digest.Digest
	var cfgDiffIDs []digest.Digest
	for i, l := range img.Layers {
		raw, err := layerTar(l.Files)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		d := digest.FromBytes(raw)
		diffIDs = append(diffIDs, d)
		b.DiffIDs = append(b.DiffIDs, d.String())
		if l.DiffID != "" {
			cfgDiffIDs = append(cfgDiffIDs, l.DiffID)
		} else {
			cfgDiffIDs = append(cfgDiffIDs, d)
		}
		blob, mt := raw, ocispec.MediaTypeImageLayer
		if layerGzip {
			if blob, err = gzipBytes(raw); err != nil {
				return nil, err
			}
			mt = ocispec.MediaTypeImageLayerGzip
		}
		b.Layers = append(b.Layers, blob)
		b.LayerDescs = append(b.LayerDescs, ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))})
	}
	if len(diffIDs) > 0 {
		b.ChainID = identity.ChainID(diffIDs).String()
	}
	created := img.Created
	if created.IsZero() {
		created = Epoch
	}
	cfg := dockerspec.DockerOCIImage{
		Image: ocispec.Image{
			Created:  &created,
			Author:   img.Author,
			Platform: img.platform(),
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: cfgDiffIDs},
			History:  []ocispec.History{{Created: &created, CreatedBy: "imagetest"}},
		},
		Config: dockerspec.DockerOCIImageConfig{
			ImageConfig:             img.Config,
			DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{Healthcheck: img.Healthcheck, Shell: img.Shell},
		},
	}
	if cfg.RootFS.DiffIDs == nil {
		cfg.RootFS.DiffIDs = []digest.Digest{}
	}
	var err error
	if b.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	b.ID = digest.FromBytes(b.Config).String()
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(b.Config), Size: int64(len(b.Config))},
		Layers:    b.LayerDescs,
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	if b.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	p := img.platform()
	b.ManifestDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b.Manifest), Size: int64(len(b.Manifest)), Platform: &p}
	return b, nil
}

// layerTar writes files as a tar stream.
func layerTar(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		name := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if name == "" {
			return nil, fmt.Errorf("file with empty path")
		}
		hdr := &tar.Header{
			Typeflag: f.Type,
			Name:     name,
			Linkname: f.Linkname,
			Mode:     f.Mode,
			Uid:      f.UID,
			Gid:      f.GID,
			ModTime:  Epoch,
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(f.Content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf) // no name, no time stamp: deterministic
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// archiveWriter writes the outer tarball, each blob once.
type archiveWriter struct {
	tw       *tar.Writer
	dotSlash bool
	written  map[string]bool
}

func (a *archiveWriter) file(name string, b []byte) error {
	if a.written[name] {
		return nil
	}
	a.written[name] = true
	if a.dotSlash {
		name = "./" + name
	}
	if err := a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: Epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := a.tw.Write(b)
	return err
}

func (a *archiveWriter) blob(b []byte) (string, error) {
	d := digest.FromBytes(b)
	p := path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
	return p, a.file(p, b)
}

// write runs fn with an archive writer on w, gzipping when asked.
func write(w io.Writer, opts Options, fn func(*archiveWriter) error) error {
	var zw *gzip.Writer
	if opts.Gzip {
		zw = gzip.NewWriter(w)
		w = zw
	}
	a := &archiveWriter{tw: tar.NewWriter(w), dotSlash: opts.DotSlash, written: map[string]bool{}}
	if err := fn(a); err != nil {
		return err
	}
	if err := a.tw.Close(); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// WriteOCI writes an OCI image layout tarball holding entries. Each tag of an entry becomes
// an index.json entry annotated with io.containerd.image.name (the full name) and
// org.opencontainers.image.ref.name (the tag); an untagged entry gets no annotations.
func WriteOCI(w io.Writer, opts Options, entries ...Entry) error {
	return write(w, opts, func(a *archiveWriter) error {
		if err := a.file(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
		top := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
		for _, e := range entries {
			var (
				desc ocispec.Descriptor
				tags []string
				err  error
			)
			switch e := e.(type) {
			case Image:
				desc, err = writeImage(a, e, opts.LayerGzip)
				desc.Platform = nil
				tags = e.Tags
			case Index:
				desc, err = writeIndex(a, e, opts.LayerGzip)
				tags = e.Tags
			default:
				err = fmt.Errorf("unknown entry %T", e)
			}
			if err != nil {
				return err
			}
			if len(tags) == 0 {
				top.Manifests = append(top.Manifests, desc)
			}
			for _, t := range tags {
				d := desc
				ann, err := annotations(t)
				if err != nil {
					return err
				}
				d.Annotations = ann
				top.Manifests = append(top.Manifests, d)
			}
		}
		b, err := json.Marshal(top)
		if err != nil {
			return err
		}
		return a.file(ocispec.ImageIndexFile, b)
	})
}

func annotations(tag string) (map[string]string, error) {
	n, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return nil, fmt.Errorf("tag %q: %w", tag, err)
	}
	n = reference.TagNameOnly(n)
	ann := map[string]string{annotationImageName: n.String()}
	if t, ok := n.(reference.Tagged); ok {
		ann[ocispec.AnnotationRefName] = t.Tag()
	}
	return ann, nil
}

const annotationImageName = "io.containerd.image.name"

func writeImage(a *archiveWriter, img Image, layerGzip bool) (ocispec.Descriptor, error) {
	b, err := img.Build(layerGzip)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if img.Omit {
		return b.ManifestDesc, nil
	}
	for _, l := range b.Layers {
		if _, err := a.blob(l); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	if _, err := a.blob(b.Config); err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := a.blob(b.Manifest); err != nil {
		return ocispec.Descriptor{}, err
	}
	return b.ManifestDesc, nil
}

func writeIndex(a *archiveWriter, idx Index, layerGzip bool) (ocispec.Descriptor, error) {
	ix := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	for _, img := range idx.Images {
		d, err := writeImage(a, img, layerGzip)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		ix.Manifests = append(ix.Manifests, d)
	}
	desc, err := indexBlob(a, ix)
	if err != nil || !idx.Nested {
		return desc, err
	}
	outer := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}}
	return indexBlob(a, outer)
}

func indexBlob(a *archiveWriter, ix ocispec.Index) (ocispec.Descriptor, error) {
	b, err := json.Marshal(ix)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := a.blob(b); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}, nil
}

// IndexDigest returns the digest of the index WriteOCI writes for idx (its image ID in a
// store).
func (idx Index) IndexDigest(layerGzip bool) (string, error) {
	a := &archiveWriter{tw: tar.NewWriter(io.Discard), written: map[string]bool{}}
	d, err := writeIndex(a, idx, layerGzip)
	return d.Digest.String(), err
}

// WriteDockerSave writes a docker-save tarball (manifest.json and repositories) holding imgs.
func WriteDockerSave(w io.Writer, opts Options, imgs ...Image) error {
	return write(w, opts, func(a *archiveWriter) error {
		type entry struct {
			Config   string
			RepoTags []string
			Layers   []string
		}
		manifest := []entry{}
		repos := map[string]map[string]string{}
		for n, img := range imgs {
			b, err := img.Build(opts.LayerGzip)
			if err != nil {
				return err
			}
			e := entry{RepoTags: []string{}}
			var top string
			for i, l := range b.Layers {
				var p string
				if opts.DockerBlobs {
					if p, err = a.blob(l); err != nil {
						return err
					}
				} else {
					p = fmt.Sprintf("%d-%d/layer.tar", n, i)
					if err := a.file(p, l); err != nil {
						return err
					}
				}
				e.Layers = append(e.Layers, p)
				top = digest.FromBytes(l).Encoded()
			}
			if opts.DockerBlobs {
				if e.Config, err = a.blob(b.Config); err != nil {
					return err
				}
			} else {
				e.Config = digest.Digest(b.ID).Encoded() + ".json"
				if err := a.file(e.Config, b.Config); err != nil {
					return err
				}
			}
			for _, t := range img.Tags {
				n, err := reference.ParseNormalizedNamed(t)
				if err != nil {
					return fmt.Errorf("tag %q: %w", t, err)
				}
				n = reference.TagNameOnly(n)
				e.RepoTags = append(e.RepoTags, reference.FamiliarString(n))
				if tagged, ok := n.(reference.Tagged); ok {
					fam := reference.FamiliarName(n)
					if repos[fam] == nil {
						repos[fam] = map[string]string{}
					}
					repos[fam][tagged.Tag()] = top
				}
			}
			manifest = append(manifest, e)
		}
		mb, err := json.Marshal(manifest)
		if err != nil {
			return err
		}
		if err := a.file("manifest.json", mb); err != nil {
			return err
		}
		rb, err := json.Marshal(repos)
		if err != nil {
			return err
		}
		return a.file("repositories", rb)
	})
}

// Rewrite copies the tarball r to w, passing every regular file through fn, which returns
// the content to write instead and whether to keep the entry at all. r may be gzipped; w
// gets a plain tarball. Tests use it to corrupt archives.
func Rewrite(r io.Reader, w io.Writer, fn func(name string, content []byte) ([]byte, bool)) error {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			var keep bool
			if b, keep = fn(hdr.Name, slices.Clone(b)); !keep {
				continue
			}
			hdr.Size = int64(len(b))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}
