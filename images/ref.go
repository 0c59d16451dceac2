package images

import (
	"bytes"
	"fmt"
	"regexp"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// shortID is an image ID prefix as users type it: at least four hex digits, optionally with
// the algorithm (the same rule as moby's containerd image store).
var shortID = regexp.MustCompile(`^(?:sha256:)?([a-f0-9]{4,64})$`)

// notFound is moby's error for a missing image: "No such image: REF", with a named reference
// shown in its familiar form with a tag.
func notFound(ref reference.Reference) error {
	if named, ok := ref.(reference.Named); ok {
		ref = reference.TagNameOnly(named)
	}
	return errdefs.NotFound(fmt.Errorf("No such image: %s", reference.FamiliarString(ref)))
}

// parseRef parses a reference as moby's GetImage does.
func parseRef(ref string) (reference.Reference, error) {
	parsed, err := reference.ParseAnyReference(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	return parsed, nil
}

// lookup finds the image ref names and returns its record and the normalised name that
// matched ("" when it was found by ID or digest).
func lookup(tx *bolt.Tx, ref string) (*record, string, error) {
	parsed, err := parseRef(ref)
	if err != nil {
		return nil, "", err
	}
	named, isNamed := parsed.(reference.Named)
	if !isNamed {
		// A bare digest: an image ID (config digest, or index digest of a multi-platform
		// image), or the digest an image's names point at.
		d := parsed.(reference.Digested).Digest()
		r, err := getRecord(tx, d.String())
		if err != nil || r != nil {
			return r, "", err
		}
		all, err := allRecords(tx)
		if err != nil {
			return nil, "", err
		}
		for _, r := range all {
			if r.Target.Digest == d {
				return r, "", nil
			}
		}
		for _, r := range all {
			if i := platformWithDigest(r, d); i >= 0 {
				return pinned(r, i), "", nil
			}
		}
		return nil, "", notFound(parsed)
	}
	if canon, ok := named.(reference.Canonical); ok {
		return lookupCanonical(tx, canon)
	}
	name := reference.TagNameOnly(named).String()
	if id := tx.Bucket(bucketImages).Bucket(bucketNames).Get([]byte(name)); id != nil {
		r, err := getRecord(tx, string(id))
		if err != nil {
			return nil, "", err
		}
		if r == nil {
			return nil, "", errdefs.Internal(fmt.Errorf("image name %s points at missing image %s", name, id))
		}
		return r, name, nil
	}
	// A name that is not known may still be a short image ID.
	if m := shortID.FindStringSubmatch(ref); m != nil {
		r, ambiguous, err := lookupPrefix(tx, m[1])
		if err != nil {
			return nil, "", err
		}
		if r != nil {
			return r, "", nil
		}
		if ambiguous {
			// moby's image stores both report an ambiguous prefix as a missing image.
			return nil, "", notFound(parsed)
		}
	}
	return nil, "", notFound(parsed)
}

// lookupWhole is lookup for a change to the image: it returns the whole image record, also
// when ref is a digest that names one of its platforms.
func lookupWhole(tx *bolt.Tx, ref string) (*record, string, error) {
	found, name, err := lookup(tx, ref)
	if err != nil {
		return nil, "", err
	}
	r, err := getRecord(tx, found.ID)
	if err != nil {
		return nil, "", err
	}
	if r == nil {
		return nil, "", errdefs.Internal(fmt.Errorf("image %s vanished", found.ID))
	}
	return r, name, nil
}

// lookupPrefix finds the image whose ID starts with sha256:<hexPrefix>.
func lookupPrefix(tx *bolt.Tx, hexPrefix string) (r *record, ambiguous bool, err error) {
	prefix := []byte(string(digest.SHA256) + ":" + hexPrefix)
	c := tx.Bucket(bucketImages).Bucket(bucketIDs).Cursor()
	var found []byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if found != nil {
			return nil, true, nil
		}
		found = append([]byte(nil), k...)
	}
	if found == nil {
		return nil, false, nil
	}
	r, err = getRecord(tx, string(found))
	return r, false, err
}

// lookupCanonical finds name@digest: the image of that repository whose index, manifest or
// config digest is the digest, or that carries exactly that reference as a name.
func lookupCanonical(tx *bolt.Tx, canon reference.Canonical) (*record, string, error) {
	full := canon.String()
	if id := tx.Bucket(bucketImages).Bucket(bucketNames).Get([]byte(full)); id != nil {
		r, err := getRecord(tx, string(id))
		if err != nil || r != nil {
			return r, full, err
		}
	}
	d := canon.Digest()
	all, err := allRecords(tx)
	if err != nil {
		return nil, "", err
	}
	for _, r := range all {
		if !hasRepository(r, canon.Name()) {
			continue
		}
		if r.ID == d.String() || (!r.Synthetic && r.Target.Digest == d) {
			return r, full, nil
		}
		if i := platformWithDigest(r, d); i >= 0 {
			return pinned(r, i), full, nil
		}
	}
	return nil, "", notFound(canon)
}

func hasRepository(r *record, repo string) bool {
	for _, n := range r.Names {
		if parsed, err := reference.ParseNormalizedNamed(n); err == nil && parsed.Name() == repo {
			return true
		}
	}
	return false
}

// platformWithDigest returns the index of the platform image of r whose config or (real)
// manifest has digest d, or -1.
func platformWithDigest(r *record, d digest.Digest) int {
	for i, p := range r.Platforms {
		if p.Config.Digest == d || (!r.Synthetic && p.Manifest.Digest == d) {
			return i
		}
	}
	return -1
}

// pinned narrows a record to one of its platform images: the one a digest named.
func pinned(r *record, i int) *record {
	c := *r
	c.Platforms = []platformRecord{r.Platforms[i]}
	return &c
}

// normaliseName parses a name given at load time (a RepoTag, an annotation) into its
// normalised form with a tag ("busybox" -> docker.io/library/busybox:latest).
func normaliseName(s string) (reference.Named, error) {
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, err
	}
	return reference.TagNameOnly(n), nil
}

// familiar returns the familiar form of a stored name ("busybox:latest").
func familiar(name string) string {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(n)
}
