// Package standard wires Slipway's default implementation of every stage into a pipeline,
// and opens an engine with it. Embedders who want other implementations start from
// Pipeline and replace stages with core.Pipeline.With, or build a core.Pipeline of their own.
package standard

import (
	"context"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/steps/image/local"
	"github.com/slipwayhq/slipway/steps/layer/snapshot"
	mergemoby "github.com/slipwayhq/slipway/steps/merge/moby"
	mkdirlocal "github.com/slipwayhq/slipway/steps/mkdir/local"
	"github.com/slipwayhq/slipway/steps/network/ipam"
	"github.com/slipwayhq/slipway/steps/register/store"
	"github.com/slipwayhq/slipway/steps/security/selinux"
	verifymoby "github.com/slipwayhq/slipway/steps/verify/moby"
)

// Config tunes the default implementations; its zero value is the default pipeline.
type Config struct {
	// Snapshotter is "overlayfs", "native" or "auto" (the default: overlayfs where the
	// kernel allows it).
	Snapshotter string
	// Network configures the built-in IPAM; ipam.DefaultConfig when it lists no network.
	Network ipam.Config
	// NoSync turns off fsync of the state and snapshot databases: faster, and a power loss
	// may lose the last containers created (a killed process loses nothing either way).
	NoSync bool
	// NoSnapshotPool makes every create prepare its own snapshot instead of taking one the
	// layer stage made ahead (snapshot.WithoutPool).
	NoSnapshotPool bool
}

// Pipeline returns the default pipeline.
func Pipeline(cfg Config) *core.Pipeline {
	var lopts []snapshot.Option
	if cfg.Snapshotter != "" {
		lopts = append(lopts, snapshot.WithSnapshotter(cfg.Snapshotter))
	}
	if cfg.NoSync {
		lopts = append(lopts, snapshot.WithNoSync())
	}
	if cfg.NoSnapshotPool {
		lopts = append(lopts, snapshot.WithoutPool())
	}
	return &core.Pipeline{Stages: map[spec.Stage]core.Impl{
		spec.StageVerify:   verifymoby.Impl(),
		spec.StageImage:    local.Impl(),
		spec.StageMerge:    mergemoby.Impl(),
		spec.StageSecurity: selinux.Impl(),
		spec.StageNetwork:  ipam.Impl(cfg.Network),
		spec.StageLayer:    snapshot.Impl(lopts...),
		spec.StageMkdir:    mkdirlocal.Impl(),
		spec.StageRegister: store.Impl(),
	}}
}

// Options returns engine options with the default pipeline and the local image store;
// callers set Root, Logger and the rest.
func Options(cfg Config) core.Options {
	return core.Options{Pipeline: Pipeline(cfg), Images: images.Factory, NoSync: cfg.NoSync}
}

// Open opens an engine at root with the default pipeline.
func Open(ctx context.Context, root string, cfg Config) (*core.Engine, error) {
	o := Options(cfg)
	o.Root = root
	return core.Open(ctx, o)
}
