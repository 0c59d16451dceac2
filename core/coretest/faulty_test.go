package coretest

import (
	"context"
	"testing"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/spec"
)

// closing is a stage implementation that counts its Close calls.
type closing struct {
	any
	closed *int
}

func (c closing) Close() error {
	*c.closed++
	return nil
}

// TestFaultyForwardsClose checks that a Faulty stage closes the implementation it wraps
// when the engine closes it: a wrapped layer stage left open keeps its snapshotter and its
// background work alive after the engine has closed.
func TestFaultyForwardsClose(t *testing.T) {
	for st, impl := range NewJournal().Pipeline().Stages {
		closed := 0
		inner := impl.New
		impl.New = func(ctx context.Context, env core.Env) (any, error) {
			v, err := inner(ctx, env)
			return closingAs(st, v, &closed), err
		}
		v, err := Faulty(impl, FailCall, "register").New(context.Background(), core.Env{})
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		c, ok := v.(core.Closer)
		if !ok {
			t.Fatalf("%s: the faulty stage is no core.Closer", st)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("%s: close: %v", st, err)
		}
		if closed != 1 {
			t.Errorf("%s: the wrapped implementation was closed %d times, want 1", st, closed)
		}
	}
}

// closingAs returns v with a counting Close, as the interface of stage st.
func closingAs(st spec.Stage, v any, closed *int) any {
	c := closing{v, closed}
	switch st {
	case spec.StageVerify:
		return struct {
			core.Verifier
			closing
		}{v.(core.Verifier), c}
	case spec.StageImage:
		return struct {
			core.ImageResolver
			closing
		}{v.(core.ImageResolver), c}
	case spec.StageMerge:
		return struct {
			core.Merger
			closing
		}{v.(core.Merger), c}
	case spec.StageSecurity:
		return struct {
			core.Securer
			closing
		}{v.(core.Securer), c}
	case spec.StageNetwork:
		return struct {
			core.Networker
			closing
		}{v.(core.Networker), c}
	case spec.StageLayer:
		return struct {
			core.Layerer
			closing
		}{v.(core.Layerer), c}
	case spec.StageMkdir:
		return struct {
			core.DirMaker
			closing
		}{v.(core.DirMaker), c}
	default:
		return struct {
			core.Registrar
			closing
		}{v.(core.Registrar), c}
	}
}
