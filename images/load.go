package images

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// Media types of Docker's distribution formats, which OCI layouts may hold too.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"

	// annotationImageName is containerd's full image name on an index.json entry.
	annotationImageName = "io.containerd.image.name"
	// annotationReferenceType marks BuildKit's attestation manifests.
	annotationReferenceType = "vnd.docker.reference.type"
)

// maxIndexDepth bounds the nesting of indexes in an OCI layout.
const maxIndexDepth = 8

// LoadOptions configure a Load.
type LoadOptions struct {
	// Platforms, when set, restricts the load to the platform images that match one of
	// them (moby's `docker load --platform`); a load that matches none fails with NotFound.
	Platforms []ocispec.Platform
	// Progress, when set, is told how far Load has read each layer of the archive that the
	// store does not hold yet, for moby's "Loading layer" messages. It is called from the
	// goroutine that called Load, in layer order, once or more per layer; the last call for
	// a layer has Current == Total.
	Progress func(LayerProgress)
}

// LayerProgress is how far Load has read one layer.
type LayerProgress struct {
	// DiffID is the layer's uncompressed digest, as the image config states it.
	DiffID string
	// Current is how many bytes of the layer blob, as the archive holds it (compressed or
	// not), were read; Total is the size of that blob.
	Current, Total int64
}

// LoadResult is what a Load brought in.
type LoadResult struct {
	// Images are the loaded images, in archive order.
	Images []LoadedImage
	// Lines are docker's messages without the trailing newline: "Loaded image: NAME" per name,
	// "Loaded image ID: sha256:..." per untagged image, and "The image X already exists,
	// renaming the old one with ID sha256:... to empty string" when a name moved.
	Lines []string
}

// LoadedImage is one image of a LoadResult.
type LoadedImage struct {
	ID string
	// Names are the image's names from the archive, in familiar form ("busybox:latest").
	Names []string
}

// pending is an image verified and ready to be indexed.
type pending struct {
	rec   record
	names []string // normalised
}

// Load reads a docker-save or OCI layout tarball (plain, gzip, zstd or bzip2) and adds its
// images. Everything is verified before anything is indexed; on error nothing is.
//
// Errors: InvalidArgument for a malformed or corrupt archive (a blob that does not match its
// digest, a layer that does not match its diffID), NotFound when LoadOptions.Platforms
// matches no image, Canceled, Internal for storage faults.
func (s *Store) Load(ctx context.Context, r io.Reader, opts LoadOptions) (LoadResult, error) {
	dir, err := s.content.stagingDir()
	if err != nil {
		return LoadResult{}, err
	}
	defer os.RemoveAll(dir)

	rc, _, err := decompress(r)
	if err != nil {
		return LoadResult{}, fmt.Errorf("invalid archive: %w", err)
	}
	defer rc.Close()
	a, err := spool(ctx, dir, rc)
	if err != nil {
		return LoadResult{}, err
	}
	l := &loader{a: a, opts: opts, blobs: map[digest.Digest]*staged{}, known: s.content.exists}
	switch {
	case a.has(ocispec.ImageLayoutFile):
		err = l.oci(ctx)
	case a.has("manifest.json"):
		err = l.dockerSave(ctx)
	default:
		err = errdefs.InvalidArgument(errors.New("invalid archive: does not contain a manifest.json"))
	}
	if err != nil {
		return LoadResult{}, err
	}
	if len(l.images) == 0 {
		if len(opts.Platforms) > 0 && l.filtered {
			return LoadResult{}, errdefs.NotFound(fmt.Errorf("no image in the archive matches platform %s", formatRequested(opts.Platforms)))
		}
		if l.filtered {
			return LoadResult{}, errdefs.InvalidArgument(errors.New("invalid archive: it holds no complete image"))
		}
	}
	if err := ctx.Err(); err != nil {
		return LoadResult{}, errdefs.Canceled(err)
	}
	return s.commit(l)
}

func formatRequested(ps []ocispec.Platform) string {
	var b bytes.Buffer
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatPlatformSpec(p))
	}
	return b.String()
}

// commit moves the load's blobs into the content store and indexes its images, in one
// transaction.
func (s *Store) commit(l *loader) (LoadResult, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	var created []digest.Digest
	cleanup := func() {
		for _, d := range created {
			if err := s.content.remove(d); err != nil {
				s.log.Warn("remove blob of a failed load", "digest", d, "error", err)
			}
		}
	}
	keys := make([]digest.Digest, 0, len(l.blobs))
	for d := range l.blobs {
		keys = append(keys, d)
	}
	slices.Sort(keys)
	for _, d := range keys {
		ok, err := s.content.commit(l.blobs[d].path, d)
		if err != nil {
			cleanup()
			return LoadResult{}, err
		}
		if ok {
			created = append(created, d)
		}
	}
	if err := s.content.syncDir(); err != nil {
		cleanup()
		return LoadResult{}, err
	}
	var res LoadResult
	err := s.update(func(tx *bolt.Tx) error {
		res = LoadResult{}
		now := time.Now().UTC()
		names := tx.Bucket(bucketImages).Bucket(bucketNames)
		for _, p := range l.images {
			rec := p.rec
			rec.Loaded = now
			old, err := getRecord(tx, rec.ID)
			if err != nil {
				return err
			}
			if old != nil {
				rec.Names, rec.Loaded, rec.LastTagTime = old.Names, old.Loaded, old.LastTagTime
				rec.Blobs = union(old.Blobs, rec.Blobs)
			}
			for _, n := range p.names {
				prev := names.Get([]byte(n))
				if string(prev) == rec.ID {
					continue
				}
				if prev != nil {
					o, err := getRecord(tx, string(prev))
					if err != nil {
						return err
					}
					if o != nil {
						o.Names = slices.DeleteFunc(o.Names, func(x string) bool { return x == n })
						if err := putRecord(tx, o); err != nil {
							return err
						}
					}
					res.Lines = append(res.Lines, fmt.Sprintf("The image %s already exists, renaming the old one with ID %s to empty string", familiar(n), prev))
				}
				if err := names.Put([]byte(n), []byte(rec.ID)); err != nil {
					return err
				}
				rec.Names = append(rec.Names, n)
				rec.LastTagTime = now
			}
			slices.Sort(rec.Names)
			rec.Names = slices.Compact(rec.Names)
			if err := putRecord(tx, &rec); err != nil {
				return err
			}
			li := LoadedImage{ID: rec.ID}
			for _, n := range p.names {
				li.Names = append(li.Names, familiar(n))
				res.Lines = append(res.Lines, "Loaded image: "+familiar(n))
			}
			if len(p.names) == 0 {
				res.Lines = append(res.Lines, "Loaded image ID: "+rec.ID)
			}
			res.Images = append(res.Images, li)
		}
		return nil
	})
	if err != nil {
		cleanup()
		return LoadResult{}, errdefs.Internal(fmt.Errorf("index loaded images: %w", err))
	}
	return res, nil
}

func union(a, b []string) []string {
	out := append(append([]string(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// loader turns a spooled archive into pending images.
type loader struct {
	a      *archive
	opts   LoadOptions
	images []*pending
	// blobs are the staged files to commit, by digest.
	blobs map[digest.Digest]*staged
	// filtered is set when a platform image was left out (missing from the archive, or not
	// one of LoadOptions.Platforms).
	filtered bool
	nsynth   int
	// known reports whether the content store holds a blob already (its layer is not
	// reported as loading, as moby skips layers it has).
	known func(digest.Digest) bool
}

// layer checks the staged layer blob f, expected to have diffID, reporting its progress.
func (l *loader) layer(ctx context.Context, f *staged, diffID digest.Digest) (layerInfo, error) {
	var progress func(int64)
	if l.opts.Progress != nil && (l.known == nil || !l.known(f.digest)) {
		if _, done := l.a.diffIDs[f.digest]; !done {
			progress = func(n int64) {
				l.opts.Progress(LayerProgress{DiffID: diffID.String(), Current: n, Total: f.size})
			}
		}
	}
	return l.a.layer(ctx, f, progress)
}

// wanted reports whether platform p is one the caller asked for.
func (l *loader) wanted(p ocispec.Platform) bool {
	if len(l.opts.Platforms) == 0 {
		return true
	}
	for _, w := range l.opts.Platforms {
		if matcherFor(w).Match(p) {
			return true
		}
	}
	return false
}

// add queues an image; one that is already queued (the same ID) only gains names.
func (l *loader) add(rec record, names []string) {
	for _, p := range l.images {
		if p.rec.ID == rec.ID {
			p.names = union(p.names, names)
			p.rec.Blobs = union(p.rec.Blobs, rec.Blobs)
			return
		}
	}
	l.images = append(l.images, &pending{rec: rec, names: names})
}

func (l *loader) need(f *staged) string {
	l.blobs[f.digest] = f
	return f.digest.String()
}

// oci loads an OCI image layout.
func (l *loader) oci(ctx context.Context) error {
	b, err := l.a.read(ocispec.ImageLayoutFile)
	if err != nil {
		return err
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(b, &layout); err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: %s: %w", ocispec.ImageLayoutFile, err))
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return errdefs.InvalidArgument(fmt.Errorf("unsupported OCI version %q", layout.Version))
	}
	b, err = l.a.read(ocispec.ImageIndexFile)
	if err != nil {
		return err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: %s: %w", ocispec.ImageIndexFile, err))
	}
	for _, desc := range idx.Manifests {
		names, err := namesFromAnnotations(desc.Annotations)
		if err != nil {
			return err
		}
		var (
			plats []platformRecord
			blobs []string
		)
		if err := l.walk(ctx, desc, nil, 0, &plats, &blobs); err != nil {
			return err
		}
		if len(plats) == 0 {
			if len(l.opts.Platforms) == 0 {
				return errdefs.InvalidArgument(fmt.Errorf("invalid archive: image %s has none of its platform images in the archive", desc.Digest))
			}
			continue
		}
		target := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
		id := target.Digest.String()
		if len(plats) == 1 {
			id = plats[0].Config.Digest.String()
		}
		l.add(record{ID: id, Target: target, Platforms: plats, Blobs: blobs}, names)
	}
	return nil
}

// namesFromAnnotations names an index.json entry: containerd's full name, else the OCI
// ref.name when it is a full reference rather than a bare tag; no name leaves the image
// dangling.
func namesFromAnnotations(ann map[string]string) ([]string, error) {
	n := ann[annotationImageName]
	if n == "" {
		r := ann[ocispec.AnnotationRefName]
		if !bytes.ContainsAny([]byte(r), ":/@") {
			return nil, nil
		}
		n = r
	}
	named, err := normaliseName(n)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: image name %q: %w", n, err))
	}
	return []string{named.String()}, nil
}

// walk collects the platform images below desc. top is false below the first index, where
// missing manifests, attestations and non-image manifests are skipped as moby skips them.
func (l *loader) walk(ctx context.Context, desc ocispec.Descriptor, hint *ocispec.Platform, depth int, plats *[]platformRecord, blobs *[]string) error {
	if err := ctx.Err(); err != nil {
		return errdefs.Canceled(err)
	}
	top := depth == 0
	if depth > maxIndexDepth {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: indexes nested deeper than %d", maxIndexDepth))
	}
	f, ok, err := l.a.blob(desc)
	if err != nil {
		return err
	}
	if !ok {
		if top {
			return errdefs.InvalidArgument(fmt.Errorf("invalid archive: blob %s is missing", desc.Digest))
		}
		l.filtered = true
		return nil
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		b, err := readStaged(f, desc.Digest.String())
		if err != nil {
			return err
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid archive: index %s: %w", desc.Digest, err))
		}
		*blobs = append(*blobs, l.need(f))
		for _, child := range idx.Manifests {
			if child.Annotations[annotationReferenceType] == "attestation-manifest" {
				continue
			}
			if child.Platform != nil && child.Platform.OS == "unknown" && child.Platform.Architecture == "unknown" {
				continue
			}
			if err := l.walk(ctx, child, child.Platform, depth+1, plats, blobs); err != nil {
				return err
			}
		}
		return nil
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		b, err := readStaged(f, desc.Digest.String())
		if err != nil {
			return err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid archive: manifest %s: %w", desc.Digest, err))
		}
		if m.Config.MediaType != ocispec.MediaTypeImageConfig && m.Config.MediaType != mediaTypeDockerConfig {
			if top {
				return errdefs.InvalidArgument(fmt.Errorf("invalid archive: manifest %s is not an image (config type %q)", desc.Digest, m.Config.MediaType))
			}
			return nil
		}
		cf, ok, err := l.a.blob(m.Config)
		if err != nil {
			return err
		}
		if !ok {
			return errdefs.InvalidArgument(fmt.Errorf("invalid archive: config %s of manifest %s is missing", m.Config.Digest, desc.Digest))
		}
		cb, err := readStaged(cf, m.Config.Digest.String())
		if err != nil {
			return err
		}
		cfg, err := parseConfig(cb, m.Config.Digest.String())
		if err != nil {
			return err
		}
		p := configPlatform(cfg, hint)
		if !l.wanted(p) {
			l.filtered = true
			return nil
		}
		if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			return errdefs.InvalidArgument(errors.New("invalid manifest, layers length mismatch"))
		}
		pr := platformRecord{
			Platform: p,
			Manifest: ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size},
			Config:   ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: m.Config.Digest, Size: m.Config.Size},
			DiffIDs:  cfg.RootFS.DiffIDs,
			Created:  cfg.Created,
			Size:     new(int64),
		}
		for i, ld := range m.Layers {
			lf, ok, err := l.a.blob(ld)
			if err != nil {
				return err
			}
			if !ok {
				return errdefs.InvalidArgument(fmt.Errorf("invalid archive: layer %s of manifest %s is missing", ld.Digest, desc.Digest))
			}
			li, err := l.layer(ctx, lf, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return err
			}
			if li.diffID != cfg.RootFS.DiffIDs[i] {
				return errdefs.InvalidArgument(fmt.Errorf("invalid diffID for layer %d: expected %s, got %s", i, cfg.RootFS.DiffIDs[i], li.diffID))
			}
			pr.Unpacked += li.unpacked
			*pr.Size += li.size
			pr.Layers = append(pr.Layers, ocispec.Descriptor{MediaType: ld.MediaType, Digest: ld.Digest, Size: ld.Size, Annotations: ld.Annotations})
			*blobs = append(*blobs, l.need(lf))
		}
		*blobs = append(*blobs, l.need(f), l.need(cf))
		*plats = append(*plats, pr)
		return nil
	}
	if top {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: unsupported media type %q of %s", desc.MediaType, desc.Digest))
	}
	return nil
}

// parseConfig reads an image config and checks what the store relies on.
func parseConfig(b []byte, what string) (*ocispec.Image, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: config %s: %w", what, err))
	}
	if cfg.RootFS.Type != "layers" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: config %s: rootfs type %q is not \"layers\"", what, cfg.RootFS.Type))
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid archive: config %s: diffID %q: %w", what, d, err))
		}
	}
	return &cfg, nil
}

// configPlatform is the platform an image config states, completed from the index
// descriptor's platform where the config is silent.
func configPlatform(cfg *ocispec.Image, hint *ocispec.Platform) ocispec.Platform {
	p := cfg.Platform
	p.OSFeatures = slices.Clone(p.OSFeatures)
	if hint != nil {
		if p.OS == "" {
			p.OS = hint.OS
		}
		if p.Architecture == "" {
			p.Architecture = hint.Architecture
		}
		if p.Variant == "" && p.Architecture == hint.Architecture {
			p.Variant = hint.Variant
		}
		if p.OSVersion == "" {
			p.OSVersion = hint.OSVersion
		}
	}
	return p
}

// dockerManifestEntry is one entry of a docker-save manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerSave loads a docker-save tarball. Each image gets an OCI manifest made here, so that
// every image in the store has one.
func (l *loader) dockerSave(ctx context.Context) error {
	b, err := l.a.read("manifest.json")
	if err != nil {
		return err
	}
	var entries []*dockerManifestEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("invalid archive: manifest.json: %w", err))
	}
	if entries == nil {
		return errdefs.InvalidArgument(errors.New("invalid archive: manifest.json is null"))
	}
	for _, e := range entries {
		if e == nil {
			return errdefs.InvalidArgument(errors.New("invalid archive: manifest.json has a null entry"))
		}
		cf, ok := l.a.get(e.Config)
		if !ok {
			return errdefs.InvalidArgument(fmt.Errorf("invalid archive: config %s is missing", e.Config))
		}
		cb, err := readStaged(cf, e.Config)
		if err != nil {
			return err
		}
		cfg, err := parseConfig(cb, e.Config)
		if err != nil {
			return err
		}
		p := configPlatform(cfg, nil)
		if !l.wanted(p) {
			l.filtered = true
			continue
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return errdefs.InvalidArgument(errors.New("invalid manifest, layers length mismatch"))
		}
		var names []string
		for _, t := range e.RepoTags {
			n, err := normaliseName(t)
			if err != nil {
				return errdefs.InvalidArgument(fmt.Errorf("invalid archive: RepoTag %q: %w", t, err))
			}
			names = append(names, n.String())
		}
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cf.digest, Size: cf.size},
		}
		pr := platformRecord{Platform: p, DiffIDs: cfg.RootFS.DiffIDs, Created: cfg.Created, Size: new(int64)}
		var blobs []string
		for i, lp := range e.Layers {
			lf, ok := l.a.get(lp)
			if !ok {
				return errdefs.InvalidArgument(fmt.Errorf("invalid archive: layer %s is missing", lp))
			}
			li, err := l.layer(ctx, lf, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return err
			}
			if li.diffID != cfg.RootFS.DiffIDs[i] {
				return errdefs.InvalidArgument(fmt.Errorf("invalid diffID for layer %d: expected %s, got %s", i, cfg.RootFS.DiffIDs[i], li.diffID))
			}
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: li.comp.layerMediaType(), Digest: lf.digest, Size: lf.size})
			pr.Unpacked += li.unpacked
			*pr.Size += li.size
			blobs = append(blobs, l.need(lf))
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return errdefs.Internal(err)
		}
		l.nsynth++
		mp, md, ms, err := writeStaged(l.a.dir, "manifest-"+strconv.Itoa(l.nsynth), bytes.NewReader(mb))
		if err != nil {
			return errdefs.Internal(fmt.Errorf("stage manifest: %w", err))
		}
		mf := &staged{path: mp, digest: md, size: ms}
		pr.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: ms}
		pr.Config = m.Config
		pr.Layers = m.Layers
		blobs = append(blobs, l.need(cf), l.need(mf))
		l.add(record{ID: cf.digest.String(), Target: pr.Manifest, Platforms: []platformRecord{pr}, Blobs: blobs, Synthetic: true}, names)
	}
	return nil
}
