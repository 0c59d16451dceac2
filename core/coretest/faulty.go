package coretest

import (
	"context"
	"fmt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Faulty wraps a real implementation so that its stage call misbehaves with f after the
// real call has done its work (the worst case for undo: the effect exists, the engine sees
// a failure). For the register stage, call selects the half: "reserve" or "register".
// Undo passes through to the real implementation.
func Faulty(impl core.Impl, f Fault, call string) core.Impl {
	inner := impl.New
	impl.New = func(ctx context.Context, env core.Env) (any, error) {
		v, err := inner(ctx, env)
		if err != nil {
			return nil, err
		}
		fl := faulter{f: f, at: string(impl.Stage)}
		switch impl.Stage {
		case spec.StageVerify:
			return faultyVerify{v.(core.Verifier), fl, closeInner{v}}, nil
		case spec.StageImage:
			return faultyImage{v.(core.ImageResolver), fl, closeInner{v}}, nil
		case spec.StageMerge:
			return faultyMerge{v.(core.Merger), fl, closeInner{v}}, nil
		case spec.StageSecurity:
			return faultySecurity{v.(core.Securer), fl, closeInner{v}}, nil
		case spec.StageNetwork:
			return faultyNetwork{v.(core.Networker), fl, closeInner{v}}, nil
		case spec.StageLayer:
			return faultyLayer{v.(core.Layerer), fl, closeInner{v}}, nil
		case spec.StageMkdir:
			return faultyMkdir{v.(core.DirMaker), fl, closeInner{v}}, nil
		case spec.StageRegister:
			return faultyRegister{v.(core.Registrar), fl, call, closeInner{v}}, nil
		}
		return nil, fmt.Errorf("unknown stage %s", impl.Stage)
	}
	return impl
}

// closeInner forwards Close to the wrapped implementation, so that the engine closes it
// with the pipeline: a wrapped layer stage left open would keep its snapshotter and its
// background work alive after the engine closed.
type closeInner struct{ v any }

func (c closeInner) Close() error {
	if cl, ok := c.v.(core.Closer); ok {
		return cl.Close()
	}
	return nil
}

type faulter struct {
	f  Fault
	at string
}

// fail misbehaves after the real call; cancel is the run's context's cancel function,
// taken from the context (see CancelContext).
func (fl faulter) fail(ctx context.Context) error {
	switch fl.f {
	case FailCall:
		return errdefs.Internal(fmt.Errorf("injected failure after %s", fl.at))
	case PanicCall:
		panic("injected panic after " + fl.at)
	case HangCall:
		<-ctx.Done()
		return ctx.Err()
	case CancelCall:
		if c, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
			c()
		}
	}
	return nil
}

type cancelKey struct{}

// CancelContext returns a context that a Faulty stage with CancelCall cancels.
func CancelContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	return context.WithValue(ctx, cancelKey{}, cancel), cancel
}

type faultyVerify struct {
	core.Verifier
	fl faulter
	closeInner
}

func (f faultyVerify) Verify(ctx context.Context, req *spec.CreateRequest) (*spec.Verified, error) {
	v, err := f.Verifier.Verify(ctx, req)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultyImage struct {
	core.ImageResolver
	fl faulter
	closeInner
}

func (f faultyImage) ResolveImage(ctx context.Context, rec *spec.Record) (*spec.Image, error) {
	v, err := f.ImageResolver.ResolveImage(ctx, rec)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultyMerge struct {
	core.Merger
	fl faulter
	closeInner
}

func (f faultyMerge) Merge(ctx context.Context, rec *spec.Record) (*spec.Merged, error) {
	v, err := f.Merger.Merge(ctx, rec)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultySecurity struct {
	core.Securer
	fl faulter
	closeInner
}

func (f faultySecurity) Secure(ctx context.Context, rec *spec.Record) (*spec.Security, error) {
	v, err := f.Securer.Secure(ctx, rec)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultyNetwork struct {
	core.Networker
	fl faulter
	closeInner
}

func (f faultyNetwork) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	v, err := f.Networker.ConfigureNetwork(ctx, rec)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultyLayer struct {
	core.Layerer
	fl faulter
	closeInner
}

func (f faultyLayer) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	v, err := f.Layerer.PrepareRootFS(ctx, rec)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultyMkdir struct {
	core.DirMaker
	fl faulter
	closeInner
}

func (f faultyMkdir) MakeDirs(ctx context.Context, rec *spec.Record) (*spec.Dirs, error) {
	v, err := f.DirMaker.MakeDirs(ctx, rec)
	if err != nil {
		return v, err
	}
	return v, f.fl.fail(ctx)
}

type faultyRegister struct {
	core.Registrar
	fl   faulter
	call string
	closeInner
}

func (f faultyRegister) Reserve(ctx context.Context, rec *spec.Record) (string, error) {
	n, err := f.Registrar.Reserve(ctx, rec)
	if err != nil || f.call != "reserve" {
		return n, err
	}
	return n, f.fl.fail(ctx)
}

func (f faultyRegister) Register(ctx context.Context, rec *spec.Record) error {
	if err := f.Registrar.Register(ctx, rec); err != nil || f.call != "register" {
		return err
	}
	return f.fl.fail(ctx)
}
