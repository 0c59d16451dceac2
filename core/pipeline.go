package core

import (
	"context"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Impl is one named implementation of one stage. New builds it; the value it returns must
// implement the stage's interface (Verifier for verify, Securer for security, and so on).
// The Name is recorded in every container the implementation helps create, and remove finds
// the implementation again by it, so a name must keep meaning the same behaviour.
type Impl struct {
	Stage spec.Stage
	Name  string
	// Config identifies the implementation's configuration (a digest of it, say); empty for
	// an implementation without one. Implementations with the same Name and different Config
	// are different implementations: each is built on its own and recorded as "Name@Config".
	Config string
	// Timeout, when set, bounds each call of the stage (and, for the register stage, each of
	// its two halves): a call still running then sees its context cancelled, and the run
	// fails with Unavailable and is undone. It is not part of the identity.
	Timeout time.Duration
	New     func(ctx context.Context, env Env) (any, error)
}

// Key is the name recorded in containers: Name, or Name@Config when Config is set.
func (i Impl) Key() string {
	if i.Config == "" {
		return i.Name
	}
	return i.Name + "@" + i.Config
}

// CheckStep places a check before or after a stage. Exactly one of Before and After is set.
type CheckStep struct {
	Name   string
	Before spec.Stage
	After  spec.Stage
	New    func(ctx context.Context, env Env) (Checker, error)
}

// Pipeline chooses the implementation of every stage and the checks that run between them.
// A Pipeline is a value: the engine builds an immutable snapshot from it, and a run uses the
// snapshot it started with until it ends.
type Pipeline struct {
	Stages map[spec.Stage]Impl
	Checks []CheckStep
	// Known lists further implementations the engine can build on demand, to remove
	// containers that an earlier pipeline created with them.
	Known []Impl
}

// Validate checks that every stage has an implementation and every check a valid place,
// without building anything.
func (p *Pipeline) Validate() error {
	if p == nil {
		return errdefs.InvalidArgument(fmt.Errorf("no pipeline"))
	}
	for _, s := range spec.Stages {
		impl, ok := p.Stages[s]
		if !ok || impl.New == nil {
			return errdefs.InvalidArgument(fmt.Errorf("pipeline: stage %s has no implementation", s))
		}
		if impl.Name == "" {
			return errdefs.InvalidArgument(fmt.Errorf("pipeline: the implementation of stage %s has no name", s))
		}
	}
	for s := range p.Stages {
		if !s.Valid() {
			return errdefs.InvalidArgument(fmt.Errorf("pipeline: unknown stage %q", s))
		}
	}
	for _, c := range p.Checks {
		if (c.Before == "") == (c.After == "") {
			return errdefs.InvalidArgument(fmt.Errorf("pipeline: check %q must name exactly one of before and after", c.Name))
		}
		if s := c.Before + c.After; !s.Valid() {
			return errdefs.InvalidArgument(fmt.Errorf("pipeline: check %q is placed at unknown stage %q", c.Name, s))
		}
		if c.New == nil {
			return errdefs.InvalidArgument(fmt.Errorf("pipeline: check %q has no constructor", c.Name))
		}
	}
	return nil
}

// With returns a copy of p with impl as the implementation of its stage; the replaced one
// stays known, so containers it created can still be removed.
func (p Pipeline) With(impl Impl) Pipeline {
	stages := make(map[spec.Stage]Impl, len(p.Stages))
	for k, v := range p.Stages {
		stages[k] = v
	}
	if old, ok := stages[impl.Stage]; ok && old.Key() != impl.Key() {
		p.Known = append(append([]Impl(nil), p.Known...), old)
	}
	stages[impl.Stage] = impl
	p.Stages = stages
	return p
}

type checkAt struct {
	name string
	c    Checker
}

// snapshot is an immutable, built pipeline.
type snapshot struct {
	pipeline Pipeline
	names    map[spec.Stage]string
	timeouts map[spec.Stage]time.Duration
	verify   Verifier
	image    ImageResolver
	merge    Merger
	security Securer
	layer    Layerer
	mkdir    DirMaker
	network  Networker
	register Registrar
	before   map[spec.Stage][]checkAt
	after    map[spec.Stage][]checkAt

	// active counts the runs using the snapshot; retired is set once a reload replaced it.
	// Both are guarded by Engine.snapMu.
	active  int
	retired bool
}

func (s *snapshot) undoer(st spec.Stage) Undoer {
	switch st {
	case spec.StageSecurity:
		return s.security
	case spec.StageLayer:
		return s.layer
	case spec.StageMkdir:
		return s.mkdir
	case spec.StageNetwork:
		return s.network
	case spec.StageRegister:
		return s.register
	}
	return nil
}

// implementsStage reports whether v implements the interface of stage st.
func implementsStage(st spec.Stage, v any) bool {
	var ok bool
	switch st {
	case spec.StageVerify:
		_, ok = v.(Verifier)
	case spec.StageImage:
		_, ok = v.(ImageResolver)
	case spec.StageMerge:
		_, ok = v.(Merger)
	case spec.StageSecurity:
		_, ok = v.(Securer)
	case spec.StageLayer:
		_, ok = v.(Layerer)
	case spec.StageMkdir:
		_, ok = v.(DirMaker)
	case spec.StageNetwork:
		_, ok = v.(Networker)
	case spec.StageRegister:
		_, ok = v.(Registrar)
	}
	return ok
}
