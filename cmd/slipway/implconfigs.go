package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
)

// Stage configurations are kept like plugin binaries: content addressed and never changed,
// under <root>/configs/<stage>/<key>.json, where the key ("ipam@3f2a…") names the
// implementation and the digest of its configuration. A container records the keys of the
// implementations that created it, so it can always be removed with exactly those, whatever
// the pipeline file says by then.

func configPath(root string, st spec.Stage, key string) string {
	return filepath.Join(root, "configs", string(st), key+".json")
}

// saveConfigs keeps the configuration of every configured stage of plan.
func saveConfigs(root string, plan *hclconfig.Plan) error {
	for _, sp := range plan.Stages {
		if !strings.Contains(sp.Key, "@") || strings.HasPrefix(sp.Key, "plugin") || len(sp.Config) == 0 {
			continue // a default configuration rebuilds from the registry alone
		}
		p := configPath(root, sp.Stage, sp.Key)
		if _, err := os.Stat(p); err == nil {
			continue // content addressed: the same key always has the same content
		}
		if err := writeFileAtomic(p, sp.Config); err != nil {
			return errdefs.Internal(fmt.Errorf("keep the configuration of %s: %w", sp.Key, err))
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// builtinResolver rebuilds a built-in implementation from a key recorded in a container,
// with the configuration kept when the container was created.
func (a *app) builtinResolver(root string) func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
	return func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
		name, _, ok := strings.Cut(key, "@")
		if !ok || strings.HasPrefix(key, "plugin") {
			return core.Impl{}, false
		}
		data, err := os.ReadFile(configPath(root, st, key))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				a.log.Error("cannot read a kept stage configuration", "stage", st, "key", key, "error", err)
			}
			return core.Impl{}, false
		}
		impl, err := hclconfig.Rebuild(a.registry(), st, name, data)
		if err != nil || impl.Key() != key {
			a.log.Error("cannot rebuild a stage implementation from its kept configuration", "stage", st, "key", key, "rebuilt", impl.Key(), "error", err)
			return core.Impl{}, false
		}
		return impl, true
	}
}
