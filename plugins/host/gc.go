package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
)

// References is what the containers of an engine need from the plugin store.
type References struct {
	// Binaries counts, by "NAME@sha256:HEX", the containers created with the binary.
	Binaries map[string]int
	// Configs are the IDs of the saved configs that containers name.
	Configs map[string]bool
	// Unknown is set when a run whose undo failed has no record to read its
	// implementations from: what it needs is unknown, and nothing may be collected.
	Unknown bool
}

// Count returns how many containers were created with the installed binary in.
func (r References) Count(in Installed) int { return r.Binaries[in.Name+"@"+in.Digest] }

// Referenced returns what the containers of e, dead ones included, need from the store.
func Referenced(ctx context.Context, e *core.Engine) (References, error) {
	refs := References{Binaries: map[string]int{}, Configs: map[string]bool{}}
	recs, err := e.Env().Host.Containers(ctx)
	if err != nil {
		return refs, err
	}
	have := map[string]bool{}
	for _, r := range recs {
		have[r.ID] = true
		seen := map[string]bool{}
		for _, key := range r.Implementations {
			name, sha, cfg, ok := ParseKey(key)
			if !ok {
				continue
			}
			if cfg != "" {
				refs.Configs[cfg] = true
			}
			if b := name + "@sha256:" + sha; !seen[b] {
				seen[b] = true
				refs.Binaries[b]++
			}
		}
	}
	// Runs whose undo failed are listed as dead; those without a record keep their
	// implementations in the journal only.
	all, err := e.List(ctx, core.ListOptions{All: true})
	if err != nil {
		return refs, err
	}
	for _, s := range all {
		if !have[s.ID] {
			refs.Unknown = true
		}
	}
	return refs, nil
}

// Pin marks the installed binary of name and digest as installed on purpose (slipway plugin
// install): GC keeps it until it is removed. Pins are empty files under <root>/plugins/pinned.
func (s *Store) Pin(name, sha string) error {
	dir := filepath.Join(s.dir, "pinned")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return errdefs.Internal(fmt.Errorf("pin plugin %s: %w", name, err))
	}
	f, err := os.OpenFile(filepath.Join(dir, filepath.Base(s.Path(name, sha))), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return errdefs.Internal(fmt.Errorf("pin plugin %s: %w", name, err))
	}
	return f.Close()
}

// Pinned reports whether the installed binary in was pinned.
func (s *Store) Pinned(in Installed) bool {
	_, err := os.Stat(s.pinPath(in))
	return err == nil
}

func (s *Store) pinPath(in Installed) string {
	return filepath.Join(s.dir, "pinned", filepath.Base(in.Path))
}

// Unpin removes the pin of in, if any.
func (s *Store) Unpin(in Installed) error {
	if err := os.Remove(s.pinPath(in)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errdefs.Internal(fmt.Errorf("unpin plugin %s: %w", in.Name, err))
	}
	return nil
}

// CollectGarbage removes from the store the binaries that no container of e needs, that
// were not pinned by an install, and that keep does not claim (the binaries of the pipeline
// the engine runs: a Builder), and the saved configs no container names and keep does not
// claim. Call it once at start-up, right after core.Open and before the first run: a
// binary used by a run in flight is referenced by nothing yet. When a failed run's needs
// are unknown it removes nothing. It returns what it removed.
func CollectGarbage(ctx context.Context, s *Store, e *core.Engine, keep Keeper, log hclog.Logger) ([]Installed, []string, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	refs, err := Referenced(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	if refs.Unknown {
		log.Warn("plugin store not collected: a run whose undo failed may need any plugin; run slipway recover")
		return nil, nil, nil
	}
	all, err := s.List()
	if err != nil {
		return nil, nil, err
	}
	var (
		removed []Installed
		gone    []string
		errs    []error
	)
	for _, in := range all {
		if refs.Count(in) > 0 || s.Pinned(in) || (keep != nil && keep.UsesBinary(in.Name, in.Digest)) {
			continue
		}
		if err := os.Remove(in.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, in)
		log.Info("removed unreferenced plugin binary", "name", in.Name, "digest", in.Digest)
	}
	ids, err := s.Configs()
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		if refs.Configs[id] || (keep != nil && keep.UsesConfig(id)) {
			continue
		}
		if err := os.Remove(filepath.Join(s.ConfigDir(), id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, id)
	}
	for _, dir := range []string{s.dir, s.ConfigDir()} {
		if ents, err := os.ReadDir(dir); err == nil {
			for _, en := range ents {
				if strings.HasPrefix(en.Name(), ".install-") || strings.HasPrefix(en.Name(), ".config-") {
					os.Remove(filepath.Join(dir, en.Name()))
				}
			}
		}
	}
	if len(gone) > 0 {
		log.Info("removed unreferenced plugin configs", "configs", len(gone))
	}
	if len(errs) > 0 {
		return removed, gone, errdefs.Internal(fmt.Errorf("plugin store gc: %w", errors.Join(errs...)))
	}
	return removed, gone, nil
}

// Keeper says what a process uses beyond the containers' records: Builder implements it
// with the binaries and configs of the pipelines it loaded.
type Keeper interface {
	UsesBinary(name, dgst string) bool
	UsesConfig(id string) bool
}
