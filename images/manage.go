package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// List returns every image, newest first, as GET /images/json shows them.
func (s *Store) List(ctx context.Context) ([]image.Summary, error) {
	if err := ctx.Err(); err != nil {
		return nil, errdefs.Canceled(err)
	}
	var recs []*record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		recs, err = allRecords(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]image.Summary, 0, len(recs))
	for _, r := range recs {
		p := r.Platforms[s.defaultPlatform(r)]
		sum := image.Summary{
			ID:          r.ID,
			ParentID:    "",
			RepoTags:    repoTags(r),
			RepoDigests: repoDigests(r),
			Created:     created(r, p).Unix(),
			Size:        p.size(),
			SharedSize:  -1,
			Containers:  -1,
			Descriptor:  &ocispec.Descriptor{MediaType: r.Target.MediaType, Digest: r.Target.Digest, Size: r.Target.Size},
			Manifests:   manifestSummaries(r),
		}
		if cfg, err := s.readConfig(p.Config.Digest); err == nil {
			sum.Labels = cfg.Config.Labels
		}
		out = append(out, sum)
	}
	slices.SortStableFunc(out, func(a, b image.Summary) int {
		if a.Created != b.Created {
			return int(b.Created - a.Created)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Inspect returns what GET /images/{ref}/json shows for ref: the image's host platform (or
// first platform) in full.
//
// Errors: as Resolve.
func (s *Store) Inspect(ctx context.Context, ref string) (image.InspectResponse, error) {
	if err := ctx.Err(); err != nil {
		return image.InspectResponse{}, errdefs.Canceled(err)
	}
	var r *record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, _, err = lookup(tx, ref)
		return err
	})
	if err != nil {
		return image.InspectResponse{}, err
	}
	p := r.Platforms[s.defaultPlatform(r)]
	b, err := s.content.readAll(p.Config.Digest, maxMetadata)
	if err != nil {
		return image.InspectResponse{}, fmt.Errorf("image config: %w", err)
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return image.InspectResponse{}, errdefs.Internal(fmt.Errorf("image config %s: %w", p.Config.Digest, err))
	}
	var comment struct {
		Comment string `json:"comment"`
	}
	_ = json.Unmarshal(b, &comment)
	resp := image.InspectResponse{
		ID:           r.ID,
		RepoTags:     repoTags(r),
		RepoDigests:  repoDigests(r),
		Comment:      comment.Comment,
		Author:       cfg.Author,
		Config:       &cfg.Config,
		Architecture: p.Platform.Architecture,
		Variant:      p.Platform.Variant,
		Os:           p.Platform.OS,
		OsVersion:    p.Platform.OSVersion,
		Size:         p.size(),
		RootFS:       image.RootFS{Type: "layers"},
		Metadata:     image.Metadata{LastTagTime: r.LastTagTime},
		Descriptor:   &ocispec.Descriptor{MediaType: r.Target.MediaType, Digest: r.Target.Digest, Size: r.Target.Size},
		Manifests:    manifestSummaries(r),
	}
	if cfg.Created != nil {
		resp.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	for _, d := range p.DiffIDs {
		resp.RootFS.Layers = append(resp.RootFS.Layers, d.String())
	}
	return resp, nil
}

func created(r *record, p platformRecord) time.Time {
	if p.Created != nil {
		return *p.Created
	}
	return r.Loaded
}

// repoTags are the image's names in familiar form, as docker lists them.
func repoTags(r *record) []string {
	tags := []string{}
	for _, n := range r.Names {
		if parsed, err := reference.ParseNormalizedNamed(n); err == nil {
			if _, ok := parsed.(reference.Canonical); ok {
				continue
			}
		}
		tags = append(tags, familiar(n))
	}
	return tags
}

// repoDigests are repository@digest for each repository the image is named in, with the
// digest its names point at; none for an image whose manifest the store made itself.
func repoDigests(r *record) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, n := range r.Names {
		parsed, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		var s string
		if c, ok := parsed.(reference.Canonical); ok {
			s = reference.FamiliarString(c)
		} else if r.Synthetic {
			continue
		} else if c, err := reference.WithDigest(reference.TrimNamed(parsed), r.Target.Digest); err == nil {
			s = reference.FamiliarString(c)
		}
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func manifestSummaries(r *record) []image.ManifestSummary {
	var out []image.ManifestSummary
	for _, p := range r.Platforms {
		ms := image.ManifestSummary{
			ID:         p.Manifest.Digest.String(),
			Descriptor: ocispec.Descriptor{MediaType: p.Manifest.MediaType, Digest: p.Manifest.Digest, Size: p.Manifest.Size, Platform: &ocispec.Platform{}},
			Available:  true,
			Kind:       image.ManifestKindImage,
			ImageData:  &image.ImageProperties{Platform: p.Platform, Containers: []string{}},
		}
		*ms.Descriptor.Platform = p.Platform
		content := p.Manifest.Size + p.Config.Size
		for _, l := range p.Layers {
			content += l.Size
		}
		ms.Size.Content = content
		ms.Size.Total = content + p.size()
		ms.ImageData.Size.Unpacked = p.size()
		out = append(out, ms)
	}
	return out
}

// UsedBy reports the ID of a container that uses the image with ID imageID, or ok false
// when none does. Delete calls it with the image's ID and, for a multi-platform image, with
// the config digest of each of its platforms (what a container records as its image ID).
type UsedBy func(imageID string) (containerID string, ok bool)

// Delete removes ref as `docker rmi` without --force does: a name is untagged, and the image
// goes when its last name does or when it was named by ID; blobs that no other image refers
// to are removed with it.
//
// Errors: NotFound "No such image: REF"; InvalidArgument for a reference that does not
// parse; Conflict with moby's texts when a container uses the image ("conflict: unable to
// remove repository reference ... (must force) - container ... is using its referenced image
// ..." for its last name, "conflict: unable to delete ... (must be forced) - image is being
// used by stopped container ..." by ID) or when an ID names an image with several names
// ("... - image is referenced in multiple repositories").
func (s *Store) Delete(ctx context.Context, ref string, usedBy UsedBy) ([]image.DeleteResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, errdefs.Canceled(err)
	}
	if usedBy == nil {
		usedBy = func(string) (string, bool) { return "", false }
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	var (
		resp    []image.DeleteResponse
		deleted *record
	)
	err := s.update(func(tx *bolt.Tx) error {
		resp, deleted = nil, nil
		r, name, err := lookupWhole(tx, ref)
		if err != nil {
			return err
		}
		names := tx.Bucket(bucketImages).Bucket(bucketNames)
		user := func() (string, bool) {
			for _, id := range imageIDs(r) {
				if c, ok := usedBy(id); ok {
					return c, true
				}
			}
			return "", false
		}
		if name != "" && slices.Contains(r.Names, name) {
			// A name: untag it, and delete the image with its last name.
			if len(r.Names) == 1 {
				if c, ok := user(); ok {
					return errdefs.Conflict(fmt.Errorf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s",
						ref, truncateID(c), truncateID(r.ID)))
				}
			}
			if err := names.Delete([]byte(name)); err != nil {
				return err
			}
			r.Names = slices.DeleteFunc(r.Names, func(x string) bool { return x == name })
			resp = append(resp, image.DeleteResponse{Untagged: familiar(name)})
			if len(r.Names) > 0 {
				return putRecord(tx, r)
			}
		} else {
			// An ID (or a digest): delete the image with all its names, which must all be
			// of one repository.
			if c, ok := user(); ok {
				return errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", truncateID(r.ID), truncateID(c)))
			}
			if !singleRepository(r.Names) {
				return errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", truncateID(r.ID)))
			}
			for _, n := range r.Names {
				if err := names.Delete([]byte(n)); err != nil {
					return err
				}
				resp = append(resp, image.DeleteResponse{Untagged: familiar(n)})
			}
		}
		if err := tx.Bucket(bucketImages).Bucket(bucketIDs).Delete([]byte(r.ID)); err != nil {
			return err
		}
		resp = append(resp, image.DeleteResponse{Deleted: r.ID})
		deleted = r
		return nil
	})
	if err != nil {
		if errdefs.ClassOf(err) == errdefs.Unknown {
			err = errdefs.Internal(fmt.Errorf("delete image %s: %w", ref, err))
		}
		return nil, err
	}
	if deleted != nil {
		s.collect(deleted)
	}
	return resp, nil
}

// collect removes the blobs of a deleted image that no remaining image refers to. A failure
// leaves an unreferenced blob behind, which is harmless; it is logged.
func (s *Store) collect(deleted *record) {
	inUse := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			for _, b := range r.Blobs {
				inUse[b] = true
			}
		}
		return err
	})
	if err != nil {
		s.log.Warn("image blobs left behind", "image", deleted.ID, "error", err)
		return
	}
	for _, b := range deleted.Blobs {
		if inUse[b] {
			continue
		}
		d, err := digest.Parse(b)
		if err != nil {
			continue
		}
		if err := s.content.remove(d); err != nil {
			s.log.Warn("image blob left behind", "digest", b, "error", err)
		}
	}
}

// imageIDs are the IDs a container may record for the image: its own and its platforms'
// config digests.
func imageIDs(r *record) []string {
	ids := []string{r.ID}
	for _, p := range r.Platforms {
		if c := p.Config.Digest.String(); c != r.ID {
			ids = append(ids, c)
		}
	}
	return ids
}

// singleRepository reports whether names hold at most one tag, plus digests of that
// repository only (moby's isSingleReference).
func singleRepository(names []string) bool {
	var tag reference.Named
	repos := map[string]bool{}
	for _, n := range names {
		parsed, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			return false
		}
		if _, ok := parsed.(reference.Canonical); ok {
			repos[parsed.Name()] = true
			continue
		}
		if tag != nil {
			return false
		}
		tag = parsed
	}
	if tag == nil {
		return len(repos) <= 1
	}
	return len(repos) == 0 || (len(repos) == 1 && repos[tag.Name()])
}

// truncateID shortens an ID to the 12 hex digits docker prints.
func truncateID(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// ChainIDs returns the layer chains of every platform image in the store: each chain ID
// prefix of its diff IDs, and "" for an image without layers. The layer stage keeps the
// unpacked layers of exactly these (core.ChainLister).
func (s *Store) ChainIDs(ctx context.Context) (map[string]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, errdefs.Canceled(err)
	}
	var recs []*record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		recs, err = allRecords(tx)
		return err
	})
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("list images: %w", err))
	}
	out := map[string]bool{}
	for _, r := range recs {
		for _, p := range r.Platforms {
			if len(p.DiffIDs) == 0 {
				out[""] = true
			}
			// identity.ChainIDs writes into its argument: give it a copy.
			for _, c := range identity.ChainIDs(slices.Clone(p.DiffIDs)) {
				out[c.String()] = true
			}
		}
	}
	return out, nil
}

// Tag gives the image ref names the name newName, as `docker tag` and POST
// /images/{name}/tag do: newName is a repository with an optional tag ("latest" when none),
// never a digest. A name that another image holds moves to this one (the other keeps its
// other names, or stays without any); tagging an image with a name it has changes nothing
// but the image's LastTagTime. It returns the ID of the tagged image and the name in
// familiar form ("example.com/app:2", "myapp:latest"), what the "tag" event carries.
//
// Errors: InvalidArgument for a newName that does not parse (reference's "invalid reference
// format…" texts), names a digest ("cannot import digest reference") or has the digest
// algorithm as its name ("refusing to create an ambiguous tag using digest algorithm as
// name"); NotFound "No such image: REF" as Resolve for a ref that names no image.
func (s *Store) Tag(ctx context.Context, ref, newName string) (id, name string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", errdefs.Canceled(err)
	}
	named, err := parseTagName(newName)
	if err != nil {
		return "", "", err
	}
	name = named.String()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err = s.update(func(tx *bolt.Tx) error {
		r, _, err := lookupWhole(tx, ref)
		if err != nil {
			return err
		}
		id = r.ID
		names := tx.Bucket(bucketImages).Bucket(bucketNames)
		if prev := names.Get([]byte(name)); prev != nil && string(prev) != r.ID {
			// The name moves: moby's reference store replaces it (AddTag with force).
			o, err := getRecord(tx, string(prev))
			if err != nil {
				return err
			}
			if o != nil {
				o.Names = slices.DeleteFunc(o.Names, func(x string) bool { return x == name })
				if err := putRecord(tx, o); err != nil {
					return err
				}
			}
		}
		if err := names.Put([]byte(name), []byte(r.ID)); err != nil {
			return err
		}
		if !slices.Contains(r.Names, name) {
			r.Names = append(r.Names, name)
			slices.Sort(r.Names)
		}
		r.LastTagTime = time.Now().UTC()
		return putRecord(tx, r)
	})
	if err != nil {
		if errdefs.ClassOf(err) == errdefs.Unknown {
			err = errdefs.Internal(fmt.Errorf("tag image %s as %s: %w", ref, newName, err))
		}
		return "", "", err
	}
	return id, reference.FamiliarString(named), nil
}

// parseTagName parses the name of a tag as moby's RepoTagReference and postImagesTag do:
// a normalised repository, "latest" when it has no tag, no digest.
func parseTagName(s string) (reference.NamedTagged, error) {
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	if _, ok := n.(reference.Digested); ok {
		return nil, errdefs.InvalidArgument(errors.New("cannot import digest reference"))
	}
	if reference.FamiliarName(n) == string(digest.Canonical) {
		return nil, errdefs.InvalidArgument(errors.New("refusing to create an ambiguous tag using digest algorithm as name"))
	}
	nt, ok := reference.TagNameOnly(n).(reference.NamedTagged)
	if !ok {
		return nil, errdefs.InvalidArgument(fmt.Errorf("unexpected reference: %q", n.String()))
	}
	return nt, nil
}
