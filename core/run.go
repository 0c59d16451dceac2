package core

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// TraceStep is how long one stage (or check) of a run took.
type TraceStep struct {
	Stage    spec.Stage
	Impl     string
	Duration time.Duration
	Err      error
}

// Trace collects the steps of a run; attach one to a context with WithTrace.
type Trace struct {
	Steps []TraceStep
}

type traceKey struct{}

// WithTrace returns a context that makes Create and Remove record their steps in t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// run is one create or remove in flight.
type run struct {
	e     *Engine
	ctx   context.Context
	op    string
	snap  *snapshot
	rec   *spec.Record
	warn  []string
	undo  []undoEntry
	trace *Trace
	// journaled is set once the run's journal entry is on disk.
	journaled bool
	jr        *runRecord
}

type undoEntry struct {
	stage spec.Stage
	impl  string
	u     Undoer
}

// step calls one stage with the engine's bookkeeping: the test hook, the trace, the
// observer, and a recovered panic turned into an Internal error.
func step[T any](r *run, st spec.Stage, impl string, f func(ctx context.Context) (T, error)) (out T, err error) {
	if err := r.ctx.Err(); err != nil {
		return out, errdefs.Canceled(fmt.Errorf("create canceled before stage %s: %w", st, err))
	}
	if h := r.e.opts.Hook; h != nil {
		h(r.ctx, r.op, st, "before")
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			r.e.log.Error("stage panicked", "stage", st, "impl", impl, "panic", p, "stack", string(debug.Stack()))
			err = errdefs.Internal(fmt.Errorf("stage %s (%s) panicked: %v", st, impl, p))
		}
		d := time.Since(start)
		if r.trace != nil {
			r.trace.Steps = append(r.trace.Steps, TraceStep{Stage: st, Impl: impl, Duration: d, Err: err})
		}
		if o := r.e.opts.Observer; o != nil {
			o.StageDone(st, impl, d, err)
		}
		if err == nil {
			if h := r.e.opts.Hook; h != nil {
				h(r.ctx, r.op, st, "after")
			}
		}
	}()
	ctx := r.ctx
	if d := r.snap.timeouts[st]; d > 0 && !strings.HasPrefix(impl, "check:") {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out, err = f(ctx)
	if err != nil && r.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = errdefs.Unavailable(fmt.Errorf("stage %s (%s) did not finish within its deadline of %s: %w", st, impl, r.snap.timeouts[st], err))
	}
	if err == nil && r.ctx.Err() != nil {
		// The stage finished, but the caller gave up meanwhile: its effect is undone with the rest.
		err = errdefs.Canceled(fmt.Errorf("create canceled during stage %s: %w", st, r.ctx.Err()))
	}
	return out, err
}

// checks runs the checks placed at st.
func (r *run) checks(list []checkAt, st spec.Stage) error {
	for _, c := range list {
		w, err := step(r, st, "check:"+c.name, func(ctx context.Context) ([]string, error) { return c.c.Check(ctx, r.rec) })
		if err != nil {
			return err
		}
		r.warn = append(r.warn, w...)
	}
	return nil
}

// effect registers the undo of stage st before calling it: an undo is owed for any stage
// that started, since it may have done part of its work before failing.
func (r *run) effect(st spec.Stage, u Undoer) {
	r.undo = append(r.undo, undoEntry{stage: st, impl: r.snap.names[st], u: u})
}

// Create runs the pipeline for req. On success the container is registered in state
// created; on any failure every effect is undone in reverse order and the error (with the
// undo errors joined to it, if any) is returned. Warnings are never nil.
func (e *Engine) Create(ctx context.Context, req spec.CreateRequest) (resp container.CreateResponse, err error) {
	resp.Warnings = []string{}
	if err := e.enter(); err != nil {
		return resp, err
	}
	defer e.runs.Done()
	start := time.Now()
	snap := e.acquireSnapshot()
	defer e.releaseSnapshot(snap)
	r := &run{e: e, ctx: ctx, op: opCreate, snap: snap, rec: &spec.Record{ID: NewID(), Implementations: map[spec.Stage]string{}}}
	r.trace, _ = ctx.Value(traceKey{}).(*Trace)
	e.rmMu.Lock()
	e.active[r.rec.ID] = struct{}{}
	e.rmMu.Unlock()
	defer func() {
		e.rmMu.Lock()
		delete(e.active, r.rec.ID)
		e.rmMu.Unlock()
	}()
	for st, n := range snap.names {
		r.rec.Implementations[st] = n
	}
	err = r.create(&req)
	resp.Warnings = append(resp.Warnings, r.warn...)
	undone := false
	if err != nil {
		if len(r.undo) > 0 {
			undone = true
			if uerr := r.rollback(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
	} else {
		resp.ID = r.rec.ID
	}
	if o := e.opts.Observer; o != nil {
		o.RunDone(opCreate, time.Since(start), err, undone)
	}
	return resp, err
}

func (r *run) create(req *spec.CreateRequest) error {
	s, rec := r.snap, r.rec
	// Cheap, effect-free stages first: every validation happens before the first effect.
	if err := r.checks(s.before[spec.StageVerify], spec.StageVerify); err != nil {
		return err
	}
	v, err := step(r, spec.StageVerify, s.names[spec.StageVerify], func(ctx context.Context) (*spec.Verified, error) { return s.verify.Verify(ctx, req) })
	if err != nil {
		return err
	}
	rec.Request = v
	r.warn = append(r.warn, v.Warnings...)
	if err := r.checks(s.after[spec.StageVerify], spec.StageVerify); err != nil {
		return err
	}
	if err := r.checks(s.before[spec.StageImage], spec.StageImage); err != nil {
		return err
	}
	img, err := step(r, spec.StageImage, s.names[spec.StageImage], func(ctx context.Context) (*spec.Image, error) { return s.image.ResolveImage(ctx, rec) })
	if err != nil {
		return err
	}
	rec.Image = img
	r.warn = append(r.warn, img.Warnings...)
	if err := r.checks(s.after[spec.StageImage], spec.StageImage); err != nil {
		return err
	}
	if err := r.checks(s.before[spec.StageMerge], spec.StageMerge); err != nil {
		return err
	}
	m, err := step(r, spec.StageMerge, s.names[spec.StageMerge], func(ctx context.Context) (*spec.Merged, error) { return s.merge.Merge(ctx, rec) })
	if err != nil {
		return err
	}
	rec.Merged = m
	r.warn = append(r.warn, m.Warnings...)
	if err := r.checks(s.after[spec.StageMerge], spec.StageMerge); err != nil {
		return err
	}

	// From here on every stage has effects. The journal entry goes to disk first, so that a
	// crash at any later instant is finished by recovery.
	rec.Name = v.Name
	jr := &runRecord{ID: rec.ID, Op: opCreate, Name: v.Name, Start: time.Now().UTC(), Implementations: effectfulNames(s.names)}
	if err := r.e.st.beginRun(jr); err != nil {
		return errdefs.Internal(fmt.Errorf("journal create of %s: %w", rec.ID, err))
	}
	r.journaled, r.jr = true, jr

	// The register stage reserves the name before anything expensive happens.
	if err := r.checks(s.before[spec.StageRegister], spec.StageRegister); err != nil {
		return err
	}
	r.effect(spec.StageRegister, s.register)
	name, err := step(r, spec.StageRegister, s.names[spec.StageRegister], func(ctx context.Context) (string, error) { return s.register.Reserve(ctx, rec) })
	if err != nil {
		return err
	}
	rec.Name = name

	if err := r.checks(s.before[spec.StageSecurity], spec.StageSecurity); err != nil {
		return err
	}
	r.effect(spec.StageSecurity, s.security)
	sec, err := step(r, spec.StageSecurity, s.names[spec.StageSecurity], func(ctx context.Context) (*spec.Security, error) { return s.security.Secure(ctx, rec) })
	keepOutput(&rec.Security, sec)
	if err != nil {
		return err
	}
	r.warn = append(r.warn, sec.Warnings...)
	if err := r.checks(s.after[spec.StageSecurity], spec.StageSecurity); err != nil {
		return err
	}

	// moby HEAD order: network settings (cheap bookkeeping) before the filesystem work.
	if err := r.checks(s.before[spec.StageNetwork], spec.StageNetwork); err != nil {
		return err
	}
	r.effect(spec.StageNetwork, s.network)
	nw, err := step(r, spec.StageNetwork, s.names[spec.StageNetwork], func(ctx context.Context) (*spec.Network, error) { return s.network.ConfigureNetwork(ctx, rec) })
	keepOutput(&rec.Network, nw)
	if err != nil {
		return err
	}
	r.warn = append(r.warn, nw.Warnings...)
	if err := r.checks(s.after[spec.StageNetwork], spec.StageNetwork); err != nil {
		return err
	}

	if err := r.checks(s.before[spec.StageLayer], spec.StageLayer); err != nil {
		return err
	}
	r.effect(spec.StageLayer, s.layer)
	fs, err := step(r, spec.StageLayer, s.names[spec.StageLayer], func(ctx context.Context) (*spec.RootFS, error) { return s.layer.PrepareRootFS(ctx, rec) })
	keepOutput(&rec.RootFS, fs)
	if err != nil {
		return err
	}
	r.warn = append(r.warn, fs.Warnings...)
	if err := r.checks(s.after[spec.StageLayer], spec.StageLayer); err != nil {
		return err
	}

	if err := r.checks(s.before[spec.StageMkdir], spec.StageMkdir); err != nil {
		return err
	}
	r.effect(spec.StageMkdir, s.mkdir)
	dirs, err := step(r, spec.StageMkdir, s.names[spec.StageMkdir], func(ctx context.Context) (*spec.Dirs, error) { return s.mkdir.MakeDirs(ctx, rec) })
	keepOutput(&rec.Dirs, dirs)
	if err != nil {
		return err
	}
	if err := r.checks(s.after[spec.StageMkdir], spec.StageMkdir); err != nil {
		return err
	}

	rec.Created = time.Now().UTC()
	_, err = step(r, spec.StageRegister, s.names[spec.StageRegister], func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.register.Register(ctx, rec)
	})
	if err != nil {
		return err
	}
	if _, err := r.e.st.get(rec.ID); err != nil {
		return errdefs.Internal(fmt.Errorf("register stage %q returned without committing container %s", s.names[spec.StageRegister], rec.ID))
	}
	return r.checks(s.after[spec.StageRegister], spec.StageRegister)
}

// keepOutput records an effectful stage's output in the run's record, also when the run
// fails with it (the caller gave up while the stage ran, or a hook after the stage failed):
// the stage's Undo then gets what the stage returned, not only rec.ID.
func keepOutput[T any](field **T, out *T) {
	if out != nil {
		*field = out
	}
}

func effectfulNames(names map[spec.Stage]string) map[spec.Stage]string {
	out := map[spec.Stage]string{}
	for st, n := range names {
		if st.Effectful() {
			out[st] = n
		}
	}
	return out
}

// rollback undoes the run's effects in reverse order on a context detached from the
// caller's, attempting every undo. The journal entry is deleted when all undos succeeded
// and kept, marked failed, otherwise.
func (r *run) rollback() error {
	var errs []error
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		if err := r.e.undoOne(r.ctx, r.op, u.stage, u.impl, u.u, r.rec); err != nil {
			errs = append(errs, err)
		}
	}
	uerr := errors.Join(errs...)
	if !r.journaled {
		return uerr
	}
	if uerr != nil {
		if err := r.e.st.failRun(r.jr, uerr); err != nil {
			r.e.log.Error("cannot keep failed run in the journal", "id", r.rec.ID, "error", err)
		}
		r.e.log.Error("undo failed; the run is kept for slipway recover", "id", r.rec.ID, "error", uerr)
		return fmt.Errorf("undo of %s failed, kept for recover: %w", r.rec.ID, uerr)
	}
	if err := r.e.st.endRun(r.rec.ID); err != nil {
		return errdefs.Internal(fmt.Errorf("journal end of %s: %w", r.rec.ID, err))
	}
	return nil
}

// undoOne runs one undo on a detached context with the engine's undo deadline, turning a
// panic into an error.
func (e *Engine) undoOne(ctx context.Context, op string, st spec.Stage, impl string, u Undoer, rec *spec.Record) (err error) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.UndoTimeout)
	defer cancel()
	if h := e.opts.Hook; h != nil {
		h(uctx, op, st, "undo")
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("undo panicked", "stage", st, "impl", impl, "panic", p, "stack", string(debug.Stack()))
			err = errdefs.Internal(fmt.Errorf("undo of stage %s (%s) panicked: %v", st, impl, p))
		}
		if err != nil {
			err = fmt.Errorf("undo %s (%s) of %s: %w", st, impl, rec.ID, err)
		}
		if t, _ := ctx.Value(traceKey{}).(*Trace); t != nil {
			t.Steps = append(t.Steps, TraceStep{Stage: st, Impl: impl + " (undo)", Duration: time.Since(start), Err: err})
		}
	}()
	return u.Undo(uctx, rec)
}

// undoChain runs the undo of every effectful stage in rec.Implementations, in reverse run
// order, with the implementations named there.
func (e *Engine) undoChain(ctx context.Context, op string, rec *spec.Record, impls map[spec.Stage]string) error {
	var errs []error
	for i := len(spec.Stages) - 1; i >= 0; i-- {
		st := spec.Stages[i]
		name, ok := impls[st]
		if !ok || !st.Effectful() {
			continue
		}
		u, release, err := e.undoerFor(ctx, st, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := e.undoOne(ctx, op, st, name, u, rec); err != nil {
			errs = append(errs, err)
		}
		release()
	}
	return errors.Join(errs...)
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	// Force is accepted for compatibility: a created container is never running, and a
	// mounted root filesystem is unmounted either way.
	Force bool
	// RemoveVolumes also removes the container's anonymous volumes (docker rm -v). Named
	// volumes are never removed by a removal.
	RemoveVolumes bool
}

// UndoCause says why an undo runs. A stage whose effects outlive a container on removal
// (volumes) reads it with UndoCauseOf; every other stage undoes the same way either way.
type UndoCause struct {
	// Remove is set when the undo removes a registered container, and unset when it rolls
	// back a create that failed, was cancelled or was cut short by a crash.
	Remove bool
	// RemoveVolumes is set for a removal that also removes the anonymous volumes.
	RemoveVolumes bool
}

type undoCauseKey struct{}

// WithUndoCause returns ctx carrying c; the engine sets it for every undo it runs, and a
// plugin host sets it again on the plugin's side of the wire.
func WithUndoCause(ctx context.Context, c UndoCause) context.Context {
	return context.WithValue(ctx, undoCauseKey{}, c)
}

// UndoCauseOf returns the cause of the undo running with ctx: the zero value, a rollback,
// when none is set.
func UndoCauseOf(ctx context.Context) UndoCause {
	c, _ := ctx.Value(undoCauseKey{}).(UndoCause)
	return c
}

// Remove removes the container with that ID, unique prefix or name by running the undo chain
// of the implementations that created it, in reverse order. A removal that fails half-way
// keeps the container in state dead, for a retry or slipway recover.
func (e *Engine) Remove(ctx context.Context, ref string, opts RemoveOptions) (err error) {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.runs.Done()
	start := time.Now()
	rec, err := e.st.get(ref)
	if err != nil {
		return err
	}
	e.rmMu.Lock()
	if _, busy := e.active[rec.ID]; busy {
		e.rmMu.Unlock()
		return errdefs.Conflict(fmt.Errorf("removal of container %s is already in progress", rec.ID))
	}
	e.active[rec.ID] = struct{}{}
	e.rmMu.Unlock()
	defer func() {
		e.rmMu.Lock()
		delete(e.active, rec.ID)
		e.rmMu.Unlock()
	}()
	err = e.remove(ctx, rec, &runRecord{ID: rec.ID, Op: opRemove, Name: rec.Name, Start: time.Now().UTC(), Implementations: effectfulNames(rec.Implementations), Volumes: opts.RemoveVolumes})
	if o := e.opts.Observer; o != nil {
		o.RunDone(opRemove, time.Since(start), err, false)
	}
	return err
}

func (e *Engine) remove(ctx context.Context, rec *spec.Record, jr *runRecord) error {
	if err := e.st.beginRun(jr); err != nil {
		return errdefs.Internal(fmt.Errorf("journal remove of %s: %w", rec.ID, err))
	}
	uctx := WithUndoCause(ctx, UndoCause{Remove: true, RemoveVolumes: jr.Volumes})
	if err := e.undoChain(uctx, opRemove, rec, jr.Implementations); err != nil {
		if derr := e.st.markDirty(rec.ID, err); derr != nil {
			e.log.Error("cannot mark container dead", "id", rec.ID, "error", derr)
		}
		if ferr := e.st.failRun(jr, err); ferr != nil {
			e.log.Error("cannot keep failed removal in the journal", "id", rec.ID, "error", ferr)
		}
		return fmt.Errorf("remove container %s: %w", rec.ID, err)
	}
	if err := e.st.Delete(ctx, rec.ID); err != nil {
		return err
	}
	if err := e.st.endRun(rec.ID); err != nil {
		return errdefs.Internal(fmt.Errorf("journal end of removal of %s: %w", rec.ID, err))
	}
	return nil
}

// RecoverReport says what Recover did.
type RecoverReport struct {
	// Recovered are the IDs of the runs whose undo (or removal) finished.
	Recovered []string
	// Failed maps the IDs of runs whose undo failed again to the reason.
	Failed map[string]error
}

// Recover finishes every run a previous process left half-done, and retries the runs whose
// undo failed before: a create is undone in reverse order, a removal is completed. It is
// what Open does at start-up, and what `slipway recover` runs.
func (e *Engine) Recover(ctx context.Context) (RecoverReport, error) {
	rep := RecoverReport{Failed: map[string]error{}}
	runs, err := e.st.runs()
	if err != nil {
		return rep, errdefs.Internal(fmt.Errorf("read journal: %w", err))
	}
	for _, jr := range runs {
		e.rmMu.Lock()
		_, busy := e.active[jr.ID]
		e.rmMu.Unlock()
		if busy {
			continue
		}
		var rerr error
		switch jr.Op {
		case opCreate:
			if _, err := e.st.get(jr.ID); err == nil {
				// The record was committed: the create finished, only the journal lagged.
				rerr = e.st.endRun(jr.ID)
				break
			}
			rec := &spec.Record{ID: jr.ID, Name: jr.Name, Implementations: jr.Implementations}
			if rerr = e.undoChain(ctx, opCreate, rec, jr.Implementations); rerr != nil {
				if ferr := e.st.failRun(jr, rerr); ferr != nil {
					e.log.Error("cannot keep failed run in the journal", "id", jr.ID, "error", ferr)
				}
			} else {
				rerr = e.st.endRun(jr.ID)
			}
		case opRemove:
			rec, err := e.st.get(jr.ID)
			if err != nil {
				// The register undo already deleted the record; the rest of the chain may not
				// have run: run it all again, it is idempotent.
				rec = &spec.Record{ID: jr.ID, Name: jr.Name, Implementations: jr.Implementations}
			}
			rerr = e.remove(ctx, rec, jr)
		default:
			rerr = errdefs.Internal(fmt.Errorf("journal entry %s has unknown op %q", jr.ID, jr.Op))
		}
		if rerr != nil {
			rep.Failed[jr.ID] = rerr
			continue
		}
		rep.Recovered = append(rep.Recovered, jr.ID)
	}
	if len(rep.Failed) > 0 {
		errs := make([]error, 0, len(rep.Failed))
		for id, err := range rep.Failed {
			errs = append(errs, fmt.Errorf("run %s: %w", id, err))
		}
		return rep, errors.Join(errs...)
	}
	return rep, nil
}
