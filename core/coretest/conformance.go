package coretest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// NewEnv opens an engine of fakes on a temporary root and returns its environment: a real
// state database, a real store and a host view, for building the implementation under
// test. The engine is closed when the test ends.
func NewEnv(t testing.TB) (core.Env, *core.Engine) {
	return NewEnvWith(t, core.Options{})
}

// NewEnvWith is NewEnv with options (an image store, say); Root, Pipeline and NoSync are
// set by it when empty.
func NewEnvWith(t testing.TB, o core.Options) (core.Env, *core.Engine) {
	t.Helper()
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	if o.Pipeline == nil {
		o.Pipeline = NewJournal().Pipeline()
	}
	o.NoSync = true
	e, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e.Env(), e
}

// Build builds impl in env and fails the test when it cannot.
func Build[T any](t testing.TB, env core.Env, impl core.Impl) T {
	t.Helper()
	v, err := impl.New(context.Background(), env)
	if err != nil {
		t.Fatalf("build %s/%s: %v", impl.Stage, impl.Name, err)
	}
	s, ok := v.(T)
	if !ok {
		var zero T
		t.Fatalf("%s/%s is %T, not %T", impl.Stage, impl.Name, v, zero)
	}
	if c, ok := v.(core.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return s
}

// Effect is an effectful stage under test: Do performs the stage for rec (setting its output
// on rec), Undo is the stage's undo, and Gone, when set, checks that nothing of rec's effect
// is left.
type Effect struct {
	Do   func(ctx context.Context, rec *spec.Record) error
	Undo core.Undoer
	Gone func(t *testing.T, rec *spec.Record)
	// NewRecord returns a record that the stages before this one have filled in.
	NewRecord func(t *testing.T) *spec.Record
}

// TestUndoer checks the undo contract every effectful stage shares: undo of what never
// happened succeeds, undo is idempotent, undo with only the ID (after a crash) removes the
// effect, and the same ID can be done again after an undo.
func TestUndoer(t *testing.T, e Effect) {
	ctx := context.Background()
	t.Run("UndoNeverDone", func(t *testing.T) {
		rec := e.NewRecord(t)
		if err := e.Undo.Undo(ctx, rec); err != nil {
			t.Fatalf("undo of an effect that never happened: %v", err)
		}
	})
	t.Run("UndoTwice", func(t *testing.T) {
		rec := e.NewRecord(t)
		if err := e.Do(ctx, rec); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := e.Undo.Undo(ctx, rec); err != nil {
				t.Fatalf("undo #%d: %v", i+1, err)
			}
		}
		if e.Gone != nil {
			e.Gone(t, rec)
		}
	})
	t.Run("UndoWithIDOnly", func(t *testing.T) {
		rec := e.NewRecord(t)
		if err := e.Do(ctx, rec); err != nil {
			t.Fatal(err)
		}
		bare := &spec.Record{ID: rec.ID, Name: rec.Name}
		if err := e.Undo.Undo(ctx, bare); err != nil {
			t.Fatalf("undo with only the ID: %v", err)
		}
		if e.Gone != nil {
			e.Gone(t, rec)
		}
	})
	t.Run("DoAgainAfterUndo", func(t *testing.T) {
		rec := e.NewRecord(t)
		if err := e.Do(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := e.Undo.Undo(ctx, rec); err != nil {
			t.Fatal(err)
		}
		again := e.NewRecord(t)
		again.ID, again.Name = rec.ID, rec.Name
		if err := e.Do(ctx, again); err != nil {
			t.Fatalf("do after undo: %v", err)
		}
		if err := e.Undo.Undo(ctx, again); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := e.NewRecord(t)
				if err := e.Do(ctx, rec); err != nil {
					errs <- err
					return
				}
				errs <- e.Undo.Undo(ctx, rec)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// TestRegistrar checks the register contract on r, built in env.
func TestRegistrar(t *testing.T, r core.Registrar, env core.Env) {
	ctx := context.Background()
	newRec := func(name string) *spec.Record {
		return &spec.Record{ID: core.NewID(), Name: name, Created: timeNow(), Merged: &spec.Merged{Config: &container.Config{}, HostConfig: &container.HostConfig{}}}
	}
	t.Run("ReserveConflict", func(t *testing.T) {
		a, b := newRec("taken"), newRec("taken")
		if _, err := r.Reserve(ctx, a); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Reserve(ctx, a); err != nil || n != "taken" {
			t.Fatalf("reserving again for the same ID: %q, %v", n, err)
		}
		_, err := r.Reserve(ctx, b)
		want := fmt.Sprintf(`Conflict. The container name "/taken" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.`, a.ID)
		if !errdefs.IsConflict(err) || err.Error() != want {
			t.Fatalf("second reservation: %v (class %v)\nwant Conflict %s", err, errdefs.ClassOf(err), want)
		}
		if err := r.Undo(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reserve(ctx, b); err != nil {
			t.Fatalf("reserve after the holder's undo: %v", err)
		}
		r.Undo(ctx, b)
	})
	t.Run("BadName", func(t *testing.T) {
		_, err := r.Reserve(ctx, newRec("-bad"))
		if !errdefs.IsInvalidArgument(err) || err.Error() != "Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" {
			t.Fatalf("bad name: %v", err)
		}
	})
	t.Run("GeneratedNamesAreDistinct", func(t *testing.T) {
		var mu sync.Mutex
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := newRec("")
				n, err := r.Reserve(ctx, rec)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if seen[n] {
					t.Errorf("name %q generated twice", n)
				}
				seen[n] = true
			}()
		}
		wg.Wait()
	})
	t.Run("RegisterCommits", func(t *testing.T) {
		rec := newRec("committed")
		n, err := r.Reserve(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		rec.Name = n
		if err := r.Register(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := env.Host.Container(ctx, "committed")
		if err != nil || got.ID != rec.ID {
			t.Fatalf("lookup after register: %v, %v", got, err)
		}
		if err := r.Undo(ctx, &spec.Record{ID: rec.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Host.Container(ctx, "committed"); !errdefs.IsNotFound(err) {
			t.Fatalf("lookup after undo: %v, want NotFound", err)
		}
	})
}

// TestVerifier checks that v refuses a request without config and never changes the
// caller's request.
func TestVerifier(t *testing.T, v core.Verifier, valid func() *spec.CreateRequest) {
	ctx := context.Background()
	t.Run("NilConfig", func(t *testing.T) {
		_, err := v.Verify(ctx, &spec.CreateRequest{})
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("nil config: %v, want InvalidArgument", err)
		}
	})
	t.Run("DoesNotMutate", func(t *testing.T) {
		req := valid()
		before := mustJSON(t, req)
		out, err := v.Verify(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if after := mustJSON(t, req); after != before {
			t.Fatalf("Verify changed the request:\nbefore %s\nafter  %s", before, after)
		}
		if out.Config == req.Config || (req.HostConfig != nil && out.HostConfig == req.HostConfig) {
			t.Fatal("Verify returned the caller's config instead of a copy")
		}
	})
}

// TestMerger checks that m never changes the records it reads.
func TestMerger(t *testing.T, m core.Merger, rec func() *spec.Record) {
	t.Run("DoesNotMutate", func(t *testing.T) {
		r := rec()
		before := mustJSON(t, r)
		if _, err := m.Merge(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if after := mustJSON(t, r); after != before {
			t.Fatalf("Merge changed its input:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// TestImageResolver checks that a missing image is NotFound with moby's text.
func TestImageResolver(t *testing.T, r core.ImageResolver) {
	rec := &spec.Record{ID: core.NewID(), Request: &spec.Verified{Config: &container.Config{Image: "nosuch/image"}, HostConfig: &container.HostConfig{}}}
	_, err := r.ResolveImage(context.Background(), rec)
	if !errdefs.IsNotFound(err) || err.Error() != "No such image: nosuch/image:latest" {
		t.Fatalf("missing image: %v (class %v), want NotFound \"No such image: nosuch/image:latest\"", err, errdefs.ClassOf(err))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
