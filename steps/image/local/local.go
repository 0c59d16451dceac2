// Package local is the built-in image stage: it resolves a container's image reference in
// the engine's local image store (core.Env.Images, normally package images) for the
// requested platform, or the host's.
//
// An empty image reference is not an error, as in moby: the container is created from no
// image at all ("scratch"), with no layers and an empty config, for the host platform. The
// merge stage then refuses it unless the request names a command.
package local

import (
	"context"
	"errors"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/go-archvariant"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the name the implementation is registered and recorded under.
const Name = "local"

// Impl returns the implementation for a pipeline.
func Impl() core.Impl {
	return core.Impl{
		Stage: spec.StageImage,
		Name:  Name,
		New:   func(ctx context.Context, env core.Env) (any, error) { return New(env) },
	}
}

// Resolver is the image stage over an image store.
type Resolver struct {
	images core.ImageService
}

// New builds the stage over env.Images. Errors: FailedPrecondition when the engine has no
// image store.
func New(env core.Env) (*Resolver, error) {
	if env.Images == nil {
		return nil, errdefs.FailedPrecondition(errors.New("image stage local: the engine has no image store"))
	}
	return &Resolver{images: env.Images}, nil
}

// ResolveImage resolves rec.Request.Config.Image for rec.Request.Platform. The result's Ref
// is the reference exactly as the user typed it.
//
// Errors: those of core.ImageService.Resolve: NotFound "No such image: REF", NotFound for a
// platform the image does not have, InvalidArgument for a reference that does not parse.
func (r *Resolver) ResolveImage(ctx context.Context, rec *spec.Record) (*spec.Image, error) {
	if rec.Request == nil || rec.Request.Config == nil {
		return nil, errdefs.InvalidArgument(errors.New("config cannot be empty in order to create a container"))
	}
	ref := rec.Request.Config.Image
	if ref == "" {
		p := hostPlatform()
		if rec.Request.Platform != nil {
			p = *rec.Request.Platform
		}
		return &spec.Image{Platform: p}, nil
	}
	img, err := r.images.Resolve(ctx, ref, rec.Request.Platform)
	if err != nil {
		return nil, err
	}
	img.Ref = ref
	return img, nil
}

var _ core.ImageResolver = (*Resolver)(nil)

// hostPlatform is moby's host platform: containerd's default with the amd64 level.
func hostPlatform() ocispec.Platform {
	p := platforms.DefaultSpec()
	if p.Architecture == "amd64" {
		p.Variant = archvariant.AMD64Variant()
	}
	return p
}
