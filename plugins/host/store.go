package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/internal/fsutil"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileRE   = regexp.MustCompile(`^([a-z0-9][a-z0-9_.-]*)-([0-9a-f]{64})$`)
)

// Store is the content-addressed store of plugin binaries under <root>/plugins: a binary is
// installed as <name>-<sha256 hex>, mode 0755, and never modified afterwards, so a container
// records the digest of each plugin that created it and can be removed with exactly that
// binary after the configuration moved on (the lesson of moby commit d222bf097c). Every
// launch verifies the file again against its digest.
type Store struct {
	dir string
}

// Installed is one binary in the store.
type Installed struct {
	Name string
	// Digest is "sha256:HEX".
	Digest  string
	Path    string
	Size    int64
	ModTime time.Time
}

// NewStore returns the store under root (the engine's state root); the directory is created
// on first install.
func NewStore(root string) *Store { return &Store{dir: filepath.Join(root, "plugins")} }

// Dir returns the directory of the binaries.
func (s *Store) Dir() string { return s.dir }

// Path returns where the binary of name with digest sha (hex, "sha256:" prefix allowed) is.
func (s *Store) Path(name, sha string) string {
	return filepath.Join(s.dir, name+"-"+strings.TrimPrefix(sha, "sha256:"))
}

// Ref returns a PluginRef for the installed binary of name with digest sha.
func (s *Store) Ref(name, sha string) PluginRef {
	return PluginRef{Name: name, Path: s.Path(name, sha), SHA256: strings.TrimPrefix(sha, "sha256:")}
}

// Install copies the binary at src into the store as name and returns it. Installing the
// same content again returns the existing entry. The copy is written to a temporary file,
// synced and renamed into place, so a crash never leaves a partial binary under its name.
func (s *Store) Install(ctx context.Context, name, src string) (Installed, error) {
	if !nameRE.MatchString(name) {
		return Installed{}, errdefs.InvalidArgument(fmt.Errorf("plugin name %q: only [a-z0-9][a-z0-9_.-] are allowed", name))
	}
	in, err := os.Open(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Installed{}, errdefs.NotFound(fmt.Errorf("install plugin %s: %w", name, err))
		}
		return Installed{}, errdefs.InvalidArgument(fmt.Errorf("install plugin %s: %w", name, err))
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return Installed{}, errdefs.InvalidArgument(fmt.Errorf("install plugin %s: %s is not a regular file", name, src))
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: %w", name, err))
	}
	tmp, err := os.CreateTemp(s.dir, ".install-*")
	if err != nil {
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: %w", name, err))
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		tmp.Close()
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: copy: %w", name, err))
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: %w", name, err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: %w", name, err))
	}
	if err := tmp.Close(); err != nil {
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: %w", name, err))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := s.Path(name, sum)
	if VerifyFile(dst, sum) == nil {
		return s.stat(name, sum)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Installed{}, errdefs.Internal(fmt.Errorf("install plugin %s: %w", name, err))
	}
	_ = fsutil.SyncDir(s.dir) // best effort: the binary is in place and verified at launch
	return s.stat(name, sum)
}

func (s *Store) stat(name, sum string) (Installed, error) {
	p := s.Path(name, sum)
	fi, err := os.Stat(p)
	if err != nil {
		return Installed{}, errdefs.Internal(err)
	}
	return Installed{Name: name, Digest: "sha256:" + sum, Path: p, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List returns the installed binaries, by name then digest.
func (s *Store) List() ([]Installed, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("list plugins: %w", err))
	}
	var out []Installed
	for _, e := range ents {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		in, err := s.stat(m[1], m[2])
		if err != nil {
			continue
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Digest < out[j].Digest
	})
	return out, nil
}

// Find returns the installed binary with digest dgst ("sha256:HEX", HEX, or a unique
// prefix of HEX of at least 12 digits).
func (s *Store) Find(dgst string) (Installed, error) {
	want := strings.TrimPrefix(strings.ToLower(dgst), "sha256:")
	if len(want) < 12 {
		return Installed{}, errdefs.InvalidArgument(fmt.Errorf("plugin digest %q is too short", dgst))
	}
	all, err := s.List()
	if err != nil {
		return Installed{}, err
	}
	var found []Installed
	for _, in := range all {
		if strings.HasPrefix(strings.TrimPrefix(in.Digest, "sha256:"), want) {
			found = append(found, in)
		}
	}
	switch len(found) {
	case 0:
		return Installed{}, errdefs.NotFound(fmt.Errorf("no such plugin: %s", dgst))
	case 1:
		return found[0], nil
	}
	return Installed{}, errdefs.InvalidArgument(fmt.Errorf("plugin digest %s is ambiguous: %d binaries match", dgst, len(found)))
}

// Verify checks the installed binary of name and digest sha against its digest.
func (s *Store) Verify(name, sha string) error {
	return VerifyFile(s.Path(name, sha), sha)
}

// Remove deletes the binary with digest dgst (see Find), unless referenced reports that a
// container still needs it ("sha256:HEX" is passed): then it is a Conflict.
func (s *Store) Remove(dgst string, referenced func(digest string) bool) (Installed, error) {
	in, err := s.Find(dgst)
	if err != nil {
		return Installed{}, err
	}
	if referenced != nil && referenced(in.Digest) {
		return Installed{}, errdefs.Conflict(fmt.Errorf("plugin %s (%s) is in use by a container; remove the containers created with it first", in.Name, in.Digest))
	}
	return in, s.Delete(in)
}

// Delete removes the installed binary in (one name and digest) and its pin, whoever uses
// it: the caller checks that no container does.
func (s *Store) Delete(in Installed) error {
	if filepath.Dir(in.Path) != s.dir || fileRE.FindString(filepath.Base(in.Path)) == "" {
		return errdefs.InvalidArgument(fmt.Errorf("remove plugin %s: %s is not in the store", in.Name, in.Path))
	}
	if err := os.Remove(in.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errdefs.Internal(fmt.Errorf("remove plugin %s: %w", in.Name, err))
	}
	return s.Unpin(in)
}

// GC removes every binary that referenced does not claim, and leftovers of interrupted
// installs. Call it only at start-up, before any plugin is launched: a binary of a run in
// flight is referenced by nothing yet.
func (s *Store) GC(referenced func(digest string) bool) ([]Installed, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var removed []Installed
	var errs []error
	for _, in := range all {
		if referenced != nil && referenced(in.Digest) {
			continue
		}
		if err := os.Remove(in.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, in)
	}
	if ents, err := os.ReadDir(s.dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".install-") {
				os.Remove(filepath.Join(s.dir, e.Name()))
			}
		}
	}
	if len(errs) > 0 {
		return removed, errdefs.Internal(fmt.Errorf("plugin gc: %w", errors.Join(errs...)))
	}
	return removed, nil
}

// VerifyFile checks that the file at path has the SHA-256 sha (hex, "sha256:" prefix
// allowed). A missing file is NotFound; a mismatch is FailedPrecondition.
func VerifyFile(path, sha string) error {
	want := strings.TrimPrefix(strings.ToLower(sha), "sha256:")
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.NotFound(fmt.Errorf("plugin binary %s is missing", path))
		}
		return errdefs.Internal(fmt.Errorf("plugin binary: %w", err))
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return errdefs.Internal(fmt.Errorf("plugin binary %s: %w", path, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return errdefs.FailedPrecondition(fmt.Errorf("plugin binary %s has sha256:%s, expected sha256:%s; refusing to run it", path, got, want))
	}
	return nil
}
