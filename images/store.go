package images

import (
	"context"
	"encoding/json"
	"fmt"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Bucket names in the state database. Everything the store keeps is below bucketImages.
var (
	bucketImages = []byte("images")
	bucketIDs    = []byte("ids")   // image ID -> JSON record
	bucketNames  = []byte("names") // normalised reference -> image ID
)

// maxMetadata bounds the size of an index, manifest or config that is read into memory.
const maxMetadata = 16 << 20

// Store is the local image store. It implements core.ImageService. The zero value is not
// usable; build one with New.
type Store struct {
	db      *bolt.DB
	content *content
	log     hclog.Logger
	host    ocispec.Platform

	// writeMu serialises the parts of Load and Delete that change the content store and the
	// index, so that a blob is never removed while another load is about to index it.
	writeMu sync.Mutex

	// configs caches parsed image configs by digest (content addressed, never stale).
	configs sync.Map
	// resolved caches what Resolve found, by reference and platform, as of generation gen
	// of the index, which update moves on after every write (see Resolve); it is emptied
	// then, and after every maxResolved entries stored.
	resolved  sync.Map
	nResolved atomic.Int64
	gen       atomic.Uint64
}

// maxResolved bounds Store.resolved: a reference can be spelt many ways (short IDs of any
// length, with or without the registry).
const maxResolved = 1024

// resolvedImage is an entry of Store.resolved.
type resolvedImage struct {
	gen uint64
	img *spec.Image
}

// update runs fn in a write transaction of the index and then makes every cached
// resolution stale.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	defer s.forgetResolved()
	defer s.gen.Add(1)
	return s.db.Update(fn)
}

// forgetResolved empties the cache of Resolve.
func (s *Store) forgetResolved() {
	s.resolved.Clear()
	s.nResolved.Store(0)
}

// record is what the index keeps for one image.
type record struct {
	// ID is the config digest of a single-platform image, else the digest of its index.
	ID string `json:"id"`
	// Target is what the image's names point at: an index or a manifest.
	Target ocispec.Descriptor `json:"target"`
	// Names are the image's normalised references (docker.io/library/busybox:latest), sorted.
	Names []string `json:"names,omitempty"`
	// Platforms are the platform images that were loaded, in index order.
	Platforms []platformRecord `json:"platforms"`
	// Blobs lists every blob the image refers to, for garbage collection on delete.
	Blobs []string `json:"blobs"`
	// Synthetic is set when the manifest was made at load time from a docker-save
	// tarball: its digest is then no registry's and is not shown as a RepoDigest.
	Synthetic   bool      `json:"synthetic,omitempty"`
	Loaded      time.Time `json:"loaded"`
	LastTagTime time.Time `json:"lastTagTime,omitzero"`
}

// platformRecord is one platform image of a record.
type platformRecord struct {
	Platform ocispec.Platform     `json:"platform"`
	Manifest ocispec.Descriptor   `json:"manifest"`
	Config   ocispec.Descriptor   `json:"config"`
	Layers   []ocispec.Descriptor `json:"layers,omitempty"`
	DiffIDs  []digest.Digest      `json:"diffIDs,omitempty"`
	Created  *time.Time           `json:"created,omitempty"`
	// Unpacked is the size of the uncompressed layers.
	Unpacked int64 `json:"unpacked"`
	// Size is the image's size as moby reports it: the content of its layers as its
	// overlay2 driver counts them. Nil for images loaded before Slipway recorded it, whose
	// size is then Unpacked.
	Size *int64 `json:"size,omitempty"`
}

// size is the platform image's size as docker images and docker ps -s show it.
func (p platformRecord) size() int64 {
	if p.Size != nil {
		return *p.Size
	}
	return p.Unpacked
}

// Option configures a Store.
type Option func(*Store)

// WithHostPlatform overrides the platform the store takes for the host's (HostPlatform by
// default); tests use it to exercise the platform-mismatch warning.
func WithHostPlatform(p ocispec.Platform) Option {
	return func(s *Store) { s.host = p }
}

// New opens the image store of env: blobs below env.Root/content, the index in env.DB.
func New(ctx context.Context, env core.Env, opts ...Option) (*Store, error) {
	if env.DB == nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("image store: no state database"))
	}
	if env.Root == "" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("image store: no state root"))
	}
	c, err := openContent(env.Root)
	if err != nil {
		return nil, err
	}
	s := &Store{db: env.DB, content: c, log: env.Logger, host: HostPlatform()}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	for _, o := range opts {
		o(s)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketImages)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(bucketIDs); err != nil {
			return err
		}
		_, err = b.CreateBucketIfNotExists(bucketNames)
		return err
	})
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("image store: create buckets: %w", err))
	}
	return s, nil
}

// Factory builds the image store for core.Options.Images.
func Factory(ctx context.Context, env core.Env) (core.ImageService, error) {
	s, err := New(ctx, env)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Host returns the platform the store takes for the host's.
func (s *Store) Host() ocispec.Platform { return s.host }

// Resolve finds ref for platform (nil: the host's) and returns it completely filled in:
// the platform manifest, config, layers, diffIDs and chain ID. When no platform was asked
// for and the chosen one does not match the host, the result carries moby's warning.
//
// Errors: InvalidArgument for a reference that does not parse; NotFound "No such image: REF"
// for an unknown image and "image with reference ... was found but does not match the
// specified platform ..." when it has no platform matching the requested one.
func (s *Store) Resolve(ctx context.Context, ref string, platform *ocispec.Platform) (*spec.Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, errdefs.Canceled(err)
	}
	// Every create resolves its image: the lookup, the decoding of the image's record and
	// the platform matching cost about 50 µs, against 1 µs for a copy of what an earlier
	// call found. An entry is used only while no write to the index happened since the
	// generation it was computed at, which is read before the index is.
	key := ref
	if platform != nil {
		key += "\x00" + platform.OS + "/" + platform.Architecture + "/" + platform.Variant + "/" + platform.OSVersion + "/" + strings.Join(platform.OSFeatures, ",")
	}
	gen := s.gen.Load()
	if v, ok := s.resolved.Load(key); ok && v.(resolvedImage).gen == gen {
		return copyImage(v.(resolvedImage).img), nil
	}
	img, err := s.resolve(ref, platform)
	if err != nil {
		return nil, err
	}
	if s.nResolved.Add(1) > maxResolved {
		s.forgetResolved()
	}
	s.resolved.Store(key, resolvedImage{gen: gen, img: copyImage(img)})
	return img, nil
}

// copyImage returns a copy of img that shares nothing a caller could change through it
// but the image config (shared by all the store's callers, as readConfig caches it).
func copyImage(img *spec.Image) *spec.Image {
	c := *img
	c.Manifest.Platform = &c.Platform
	c.Layers = slices.Clone(img.Layers)
	c.DiffIDs = slices.Clone(img.DiffIDs)
	c.Warnings = slices.Clone(img.Warnings)
	return &c
}

func (s *Store) resolve(ref string, platform *ocispec.Platform) (*spec.Image, error) {
	var (
		rec  *record
		name string
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, name, err = lookup(tx, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	var (
		i        int
		warnings []string
	)
	if platform != nil {
		if i = pick(*platform, rec.Platforms); i < 0 {
			return nil, errdefs.NotFound(fmt.Errorf("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s",
				ref, formatPlatformSpec(*platform), formatPlatforms(rec.Platforms)))
		}
	} else {
		i = s.defaultPlatform(rec)
		if p := rec.Platforms[i].Platform; !matcherFor(s.host).Match(p) {
			warnings = append(warnings, platformMismatchWarning(p, s.host))
		}
	}
	p := rec.Platforms[i]
	cfg, err := s.readConfig(p.Config.Digest)
	if err != nil {
		return nil, err
	}
	img := &spec.Image{
		Ref:      ref,
		Name:     name,
		ID:       p.Config.Digest.String(),
		Manifest: p.Manifest,
		Platform: p.Platform,
		Config:   cfg.Config,
		Layers:   append([]ocispec.Descriptor(nil), p.Layers...),
		Warnings: warnings,
	}
	img.Manifest.Platform = &img.Platform
	for _, d := range p.DiffIDs {
		img.DiffIDs = append(img.DiffIDs, d.String())
	}
	if len(p.DiffIDs) > 0 {
		img.ChainID = identity.ChainID(p.DiffIDs).String()
	}
	return img, nil
}

// defaultPlatform is the platform used when none was asked for: the host's best match, or
// else the first.
func (s *Store) defaultPlatform(rec *record) int {
	if i := pick(s.host, rec.Platforms); i >= 0 {
		return i
	}
	return 0
}

// readConfig reads and parses the image config with digest d. Configs are content
// addressed, so a parsed one is cached for the life of the store: a create resolves its
// image without touching the disk. Callers must not change what it returns.
func (s *Store) readConfig(d digest.Digest) (*dockerspec.DockerOCIImage, error) {
	if v, ok := s.configs.Load(d); ok {
		return v.(*dockerspec.DockerOCIImage), nil
	}
	b, err := s.content.readAll(d, maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("image config %s: %w", d, err))
	}
	s.configs.Store(d, &img)
	return &img, nil
}

// OpenBlob opens the blob with digest dgst. Reading it to the end verifies it: a blob that
// does not match its digest gives an Internal error at EOF.
//
// Errors: InvalidArgument for a malformed digest, NotFound for a missing blob.
func (s *Store) OpenBlob(ctx context.Context, dgst string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, errdefs.Canceled(err)
	}
	d, err := parseDigest(dgst)
	if err != nil {
		return nil, err
	}
	return s.content.open(d)
}

// getRecord reads the record of image id, or nil when there is none.
func getRecord(tx *bolt.Tx, id string) (*record, error) {
	v := tx.Bucket(bucketImages).Bucket(bucketIDs).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r record
	// Every create reads its image's record: the decoder of encoding/json/v2 (here its
	// mirror, with encoding/json's semantics) takes half the time of encoding/json's.
	if err := jsonv1.Unmarshal(v, &r); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("image record %s: %w", id, err))
	}
	if len(r.Platforms) == 0 {
		return nil, errdefs.Internal(fmt.Errorf("image record %s has no platform", id))
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return errdefs.Internal(err)
	}
	return tx.Bucket(bucketImages).Bucket(bucketIDs).Put([]byte(r.ID), b)
}

// allRecords returns every record, in ID order.
func allRecords(tx *bolt.Tx) ([]*record, error) {
	var out []*record
	err := tx.Bucket(bucketImages).Bucket(bucketIDs).ForEach(func(k, _ []byte) error {
		r, err := getRecord(tx, string(k))
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

var _ core.ImageService = (*Store)(nil)
