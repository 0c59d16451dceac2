// Package coretest holds what every stage implementation is tested with: conformance suites
// per stage contract, run on every built-in and (through go-plugin) on every plugin, and
// behavioural fakes that record the order of calls, fail on the Nth call, panic, hang, or
// fail their undo.
package coretest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Fault says how a fake stage misbehaves.
type Fault int

// The faults a fake can inject.
const (
	NoFault Fault = iota
	// FailCall returns an Internal error instead of the stage's output.
	FailCall
	// PanicCall panics in the stage call.
	PanicCall
	// HangCall blocks until the context is done, then returns its error.
	HangCall
	// CancelCall cancels the run's context (through Journal.Cancel) and returns success.
	CancelCall
)

// Journal records the calls of a set of fakes in order and holds their faults.
type Journal struct {
	mu     sync.Mutex
	calls  []string
	faults map[string]Fault // "stage" or "undo:stage"
	// Effects counts, per stage, effects done and not yet undone, by container ID.
	effects map[string]map[spec.Stage]bool
	causes  map[string]core.UndoCause // "id/stage"
	// Cancel, when set, is called by a stage with the CancelCall fault.
	Cancel context.CancelFunc
}

// Cause returns the undo cause the last undo of stage st for container id ran with, and
// whether it ran at all.
func (j *Journal) Cause(id string, st spec.Stage) (core.UndoCause, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c, ok := j.causes[id+"/"+string(st)]
	return c, ok
}

// NewJournal returns an empty journal.
func NewJournal() *Journal {
	return &Journal{faults: map[string]Fault{}, effects: map[string]map[spec.Stage]bool{}, causes: map[string]core.UndoCause{}}
}

// Inject sets the fault of a stage call ("layer") or of an undo ("undo:layer").
func (j *Journal) Inject(at string, f Fault) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.faults[at] = f
}

// Calls returns the calls so far, in order, as "stage" and "undo:stage".
func (j *Journal) Calls() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.calls...)
}

// Leftovers returns the effects done and not undone, as "id:stage".
func (j *Journal) Leftovers() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for id, m := range j.effects {
		for st, live := range m {
			if live {
				out = append(out, id[:12]+":"+string(st))
			}
		}
	}
	return out
}

func (j *Journal) enter(ctx context.Context, at string) error {
	j.mu.Lock()
	j.calls = append(j.calls, at)
	f := j.faults[at]
	cancel := j.Cancel
	j.mu.Unlock()
	switch f {
	case FailCall:
		return errdefs.Internal(fmt.Errorf("injected failure at %s", at))
	case PanicCall:
		panic("injected panic at " + at)
	case HangCall:
		<-ctx.Done()
		return ctx.Err()
	case CancelCall:
		if cancel != nil {
			cancel()
		}
	}
	return nil
}

func (j *Journal) effect(id string, st spec.Stage, live bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.effects[id] == nil {
		j.effects[id] = map[spec.Stage]bool{}
	}
	j.effects[id][st] = live
}

// Pipeline returns a pipeline of fakes that record into j. The register fake commits to the
// engine's store, so created containers are real records.
func (j *Journal) Pipeline() *core.Pipeline {
	mk := func(st spec.Stage, v func(env core.Env) any) core.Impl {
		return core.Impl{Stage: st, Name: "fake", New: func(ctx context.Context, env core.Env) (any, error) { return v(env), nil }}
	}
	return &core.Pipeline{Stages: map[spec.Stage]core.Impl{
		spec.StageVerify:   mk(spec.StageVerify, func(core.Env) any { return fakeVerify{j} }),
		spec.StageImage:    mk(spec.StageImage, func(core.Env) any { return fakeImage{j} }),
		spec.StageMerge:    mk(spec.StageMerge, func(core.Env) any { return fakeMerge{j} }),
		spec.StageSecurity: mk(spec.StageSecurity, func(core.Env) any { return &fakeSecurity{fakeEffect{j, spec.StageSecurity}} }),
		spec.StageNetwork:  mk(spec.StageNetwork, func(core.Env) any { return &fakeNetwork{fakeEffect{j, spec.StageNetwork}} }),
		spec.StageLayer:    mk(spec.StageLayer, func(core.Env) any { return &fakeLayer{fakeEffect{j, spec.StageLayer}} }),
		spec.StageMkdir:    mk(spec.StageMkdir, func(core.Env) any { return &fakeMkdir{fakeEffect{j, spec.StageMkdir}} }),
		spec.StageRegister: mk(spec.StageRegister, func(env core.Env) any { return &fakeRegister{fakeEffect{j, spec.StageRegister}, env.Store} }),
	}}
}

type fakeVerify struct{ j *Journal }

func (f fakeVerify) Verify(ctx context.Context, req *spec.CreateRequest) (*spec.Verified, error) {
	if err := f.j.enter(ctx, "verify"); err != nil {
		return nil, err
	}
	if req.Config == nil {
		return nil, errdefs.InvalidArgument(errors.New("config cannot be empty in order to create a container"))
	}
	cfg := *req.Config
	hc := &container.HostConfig{}
	if req.HostConfig != nil {
		c := *req.HostConfig
		hc = &c
	}
	return &spec.Verified{Name: req.Name, Config: &cfg, HostConfig: hc, NetworkingConfig: &network.NetworkingConfig{}}, nil
}

type fakeImage struct{ j *Journal }

func (f fakeImage) ResolveImage(ctx context.Context, rec *spec.Record) (*spec.Image, error) {
	if err := f.j.enter(ctx, "image"); err != nil {
		return nil, err
	}
	return &spec.Image{Ref: rec.Request.Config.Image, ID: "sha256:fake"}, nil
}

type fakeMerge struct{ j *Journal }

func (f fakeMerge) Merge(ctx context.Context, rec *spec.Record) (*spec.Merged, error) {
	if err := f.j.enter(ctx, "merge"); err != nil {
		return nil, err
	}
	return &spec.Merged{Config: rec.Request.Config, HostConfig: rec.Request.HostConfig, Path: "/bin/true"}, nil
}

type fakeEffect struct {
	j  *Journal
	st spec.Stage
}

func (f fakeEffect) do(ctx context.Context, id string) error {
	f.j.effect(id, f.st, true) // the effect starts before the call can fail
	if err := f.j.enter(ctx, string(f.st)); err != nil {
		return err
	}
	return nil
}

func (f fakeEffect) Undo(ctx context.Context, rec *spec.Record) error {
	f.j.mu.Lock()
	f.j.causes[rec.ID+"/"+string(f.st)] = core.UndoCauseOf(ctx)
	f.j.mu.Unlock()
	if err := f.j.enter(ctx, "undo:"+string(f.st)); err != nil {
		return err
	}
	f.j.effect(rec.ID, f.st, false)
	return nil
}

type fakeSecurity struct{ fakeEffect }

func (f *fakeSecurity) Secure(ctx context.Context, rec *spec.Record) (*spec.Security, error) {
	if err := f.do(ctx, rec.ID); err != nil {
		return nil, err
	}
	return &spec.Security{}, nil
}

type fakeNetwork struct{ fakeEffect }

func (f *fakeNetwork) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	if err := f.do(ctx, rec.ID); err != nil {
		return nil, err
	}
	return &spec.Network{NetworkMode: "none"}, nil
}

type fakeLayer struct{ fakeEffect }

func (f *fakeLayer) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	if err := f.do(ctx, rec.ID); err != nil {
		return nil, err
	}
	return &spec.RootFS{Driver: "fake", Key: rec.ID}, nil
}

type fakeMkdir struct{ fakeEffect }

func (f *fakeMkdir) MakeDirs(ctx context.Context, rec *spec.Record) (*spec.Dirs, error) {
	if err := f.do(ctx, rec.ID); err != nil {
		return nil, err
	}
	return &spec.Dirs{}, nil
}

type fakeRegister struct {
	fakeEffect
	store core.Store
}

func (f *fakeRegister) Reserve(ctx context.Context, rec *spec.Record) (string, error) {
	f.j.effect(rec.ID, f.st, true)
	if err := f.j.enter(ctx, "reserve"); err != nil {
		return "", err
	}
	name := rec.Name
	if name == "" {
		name = "fake_" + rec.ID[:8]
	}
	return name, f.store.ReserveName(rec.ID, name)
}

func (f *fakeRegister) Register(ctx context.Context, rec *spec.Record) error {
	if err := f.j.enter(ctx, "register"); err != nil {
		return err
	}
	return f.store.Commit(ctx, rec)
}

func (f *fakeRegister) Undo(ctx context.Context, rec *spec.Record) error {
	if err := f.fakeEffect.Undo(ctx, rec); err != nil {
		return err
	}
	f.store.ReleaseNames(rec.ID)
	return f.store.Delete(ctx, rec.ID)
}

var (
	_ core.Verifier      = fakeVerify{}
	_ core.ImageResolver = fakeImage{}
	_ core.Merger        = fakeMerge{}
	_ core.Securer       = (*fakeSecurity)(nil)
	_ core.Networker     = (*fakeNetwork)(nil)
	_ core.Layerer       = (*fakeLayer)(nil)
	_ core.DirMaker      = (*fakeMkdir)(nil)
	_ core.Registrar     = (*fakeRegister)(nil)
)
