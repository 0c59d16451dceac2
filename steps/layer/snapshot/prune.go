package snapshot

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/snapshots"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/spec"
)

var _ core.LayerPruner = (*Layerer)(nil)

// PruneLayers removes the unpacked layers that no image needs any more: every committed
// snapshot, in every driver below the stage's root, that is a layer (named by its chain ID)
// or an init layer ("init-<chain ID>") whose chain keep does not report. Children go before
// their parents, and a snapshot that still has a child is left: the init layer under a
// container's snapshot, or a layer under a kept one, stays whatever keep says. It returns
// the names removed, and is safe to call while containers are created: a create whose
// layers are removed under it unpacks them again (see PrepareRootFS).
func (l *Layerer) PruneLayers(ctx context.Context, keep func(chainID string) bool) ([]string, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.ops.Done()
	ds, err := l.driversFor(&spec.Record{})
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range ds {
		// A removed container's snapshot that waits for the reaper still holds its init
		// layer, and so does a spare snapshot: let them go first, and make no spare until
		// the prune is done.
		d.reaper.wait()
		resume := d.pool.pause()
		defer resume()
		r, err := l.pruneDriver(ctx, d, keep)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

func (l *Layerer) pruneDriver(ctx context.Context, d *driver, keep func(string) bool) ([]string, error) {
	parents := map[string]string{}
	children := map[string]int{}
	var candidates []string
	err := d.sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		parents[info.Name] = info.Parent
		if info.Parent != "" {
			children[info.Parent]++
		}
		if c := chainOf(info.Name); c != "-" && info.Kind == snapshots.KindCommitted && !keep(c) {
			candidates = append(candidates, info.Name)
		}
		return nil
	})
	if cerrdefs.IsNotFound(err) {
		return nil, nil // a new store
	}
	if err != nil {
		return nil, classify(err, "list %s snapshots", d.name)
	}
	var removed []string
	for progress := true; progress; {
		progress = false
		for i, name := range candidates {
			if name == "" || children[name] > 0 {
				continue
			}
			if err := d.sn.Remove(ctx, name); err != nil {
				if cerrdefs.IsNotFound(err) || cerrdefs.IsFailedPrecondition(err) {
					// Gone already, or a create gave it a child since the walk.
					candidates[i] = ""
					continue
				}
				return removed, classify(err, "remove %s snapshot %s", d.name, name)
			}
			l.ready.Delete(name)
			candidates[i] = ""
			removed = append(removed, name)
			if p := parents[name]; p != "" {
				children[p]--
			}
			progress = true
		}
	}
	if len(removed) > 0 {
		// The overlay snapshotter removes directories asynchronously (see openDriver);
		// Cleanup deletes those no snapshot owns any more.
		if c, ok := d.sn.(snapshots.Cleaner); ok {
			if err := c.Cleanup(ctx); err != nil {
				return removed, classify(err, "clean up %s snapshots", d.name)
			}
		}
	}
	return removed, nil
}

// chainOf returns the chain ID a shared snapshot belongs to: its own name for a layer, the
// chain below it for an init layer ("" for the init layer of an image without layers), and
// "-" for anything else (containers, work in progress), which pruning never touches.
func chainOf(name string) string {
	switch {
	case name == initEmpty:
		return ""
	case strings.HasPrefix(name, initPrefix):
		return strings.TrimPrefix(name, initPrefix)
	case strings.HasPrefix(name, "sha256:"):
		return name
	}
	return "-"
}

// forget drops what the ready cache says about img's layers.
func (l *Layerer) forget(img *spec.Image) {
	l.ready.Delete(initKey(img.ChainID))
	if chains, err := chainIDs(img); err == nil {
		for _, c := range chains {
			l.ready.Delete(c)
		}
	}
}
