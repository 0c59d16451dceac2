package core_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

func openFake(t *testing.T) (*core.Engine, *coretest.Journal) {
	t.Helper()
	j := coretest.NewJournal()
	e, err := core.Open(context.Background(), core.Options{Root: t.TempDir(), Pipeline: j.Pipeline(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, j
}

func req(name string) spec.CreateRequest {
	return spec.CreateRequest{Name: name, Config: &container.Config{Image: "img"}}
}

func TestCreateRunsStagesInOrder(t *testing.T) {
	e, j := openFake(t)
	resp, err := e.Create(context.Background(), req("one"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Warnings == nil {
		t.Error("Warnings is nil, want []")
	}
	want := "verify image merge reserve security network layer mkdir register"
	if got := strings.Join(j.Calls(), " "); got != want {
		t.Errorf("calls = %q, want %q", got, want)
	}
	got, err := e.Inspect(context.Background(), "one")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != resp.ID || got.Name != "/one" || got.State.Status != container.StateCreated {
		t.Errorf("inspect = %s %s %s", got.ID, got.Name, got.State.Status)
	}
	if err := e.Remove(context.Background(), resp.ID[:10], core.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	calls := j.Calls()
	wantUndo := "undo:register undo:mkdir undo:layer undo:network undo:security"
	if got := strings.Join(calls[len(calls)-5:], " "); got != wantUndo {
		t.Errorf("remove calls = %q, want %q", got, wantUndo)
	}
	if _, err := e.Inspect(context.Background(), "one"); !errdefs.IsNotFound(err) {
		t.Errorf("inspect after remove: %v, want NotFound", err)
	}
	if left := j.Leftovers(); len(left) != 0 {
		t.Errorf("leftovers after remove: %v", left)
	}
}

// TestFaultInjection makes every stage fail in turn, by error, panic and cancellation, and
// checks that every effect is undone in reverse order and nothing is left.
func TestFaultInjection(t *testing.T) {
	points := []string{"verify", "image", "merge", "reserve", "security", "network", "layer", "mkdir", "register"}
	faults := map[string]coretest.Fault{"error": coretest.FailCall, "panic": coretest.PanicCall, "cancel": coretest.CancelCall}
	for _, at := range points {
		for fname, f := range faults {
			t.Run(at+"/"+fname, func(t *testing.T) {
				e, j := openFake(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				j.Cancel = cancel
				j.Inject(at, f)
				_, err := e.Create(ctx, req("victim"))
				if err == nil {
					t.Fatal("create succeeded, want failure")
				}
				switch fname {
				case "cancel":
					if !errdefs.IsCanceled(err) {
						t.Errorf("error %v has class %v, want canceled", err, errdefs.ClassOf(err))
					}
				default:
					if !errdefs.IsInternal(err) {
						t.Errorf("error %v has class %v, want internal", err, errdefs.ClassOf(err))
					}
				}
				if left := j.Leftovers(); len(left) != 0 {
					t.Errorf("leftovers: %v", left)
				}
				// Undos ran in strict reverse order of the calls that started.
				var did, undid []string
				for _, c := range j.Calls() {
					if u, ok := strings.CutPrefix(c, "undo:"); ok {
						undid = append(undid, u)
					} else if c != "verify" && c != "image" && c != "merge" {
						if c == "reserve" {
							c = "register"
						}
						if c != "register" || len(did) == 0 {
							did = append(did, c)
						}
					}
				}
				for i := range undid {
					if undid[i] != did[len(did)-1-i] {
						t.Fatalf("undo order %v is not the reverse of %v", undid, did)
					}
				}
				if len(undid) != len(did) {
					t.Errorf("undid %v, did %v", undid, did)
				}
				list, err := e.List(context.Background(), core.ListOptions{All: true})
				if err != nil || len(list) != 0 {
					t.Errorf("list after failure = %v, %v; want empty", list, err)
				}
				// The name is free again.
				j.Inject(at, coretest.NoFault)
				if _, err := e.Create(context.Background(), req("victim")); err != nil {
					t.Errorf("create after failure: %v", err)
				}
			})
		}
	}
}

func TestFailedUndoIsKeptAndRecovered(t *testing.T) {
	e, j := openFake(t)
	j.Inject("mkdir", coretest.FailCall)
	j.Inject("undo:layer", coretest.FailCall)
	_, err := e.Create(context.Background(), req("dirty"))
	if err == nil || !strings.Contains(err.Error(), "undo layer") {
		t.Fatalf("create error = %v, want it to carry the undo failure", err)
	}
	if !errdefs.IsInternal(err) {
		t.Errorf("class %v, want the original error's class", errdefs.ClassOf(err))
	}
	list, _ := e.List(context.Background(), core.ListOptions{All: true})
	if len(list) != 1 || list[0].State != container.StateDead {
		t.Fatalf("ls -a = %+v, want one dead entry", list)
	}
	if _, err := e.Recover(context.Background()); err == nil {
		t.Fatal("recover succeeded while the undo still fails")
	}
	j.Inject("undo:layer", coretest.NoFault)
	rep, err := e.Recover(context.Background())
	if err != nil || len(rep.Recovered) != 1 {
		t.Fatalf("recover = %+v, %v", rep, err)
	}
	if left := j.Leftovers(); len(left) != 0 {
		t.Errorf("leftovers: %v", left)
	}
	if list, _ := e.List(context.Background(), core.ListOptions{All: true}); len(list) != 0 {
		t.Errorf("ls -a after recover = %+v", list)
	}
}

func TestParallelCreates(t *testing.T) {
	e, _ := openFake(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Create(context.Background(), req(fmt.Sprintf("c%d", i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, _ := e.List(context.Background(), core.ListOptions{})
	if len(list) != 200 {
		t.Errorf("listed %d containers, want 200", len(list))
	}
}

func TestParallelSameName(t *testing.T) {
	e, j := openFake(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, conflicts := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Create(context.Background(), req("same"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errdefs.IsConflict(err) && strings.Contains(err.Error(), `The container name "/same" is already in use by container`):
				conflicts++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflicts != 49 {
		t.Errorf("%d succeeded and %d conflicted, want 1 and 49", ok, conflicts)
	}
	n := 0
	for _, c := range j.Calls() {
		if c == "layer" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("layer stage ran %d times, want once: conflicts must be found before any expensive stage", n)
	}
}

func TestLookups(t *testing.T) {
	e, _ := openFake(t)
	var ids []string
	for i := 0; i < 20; i++ {
		r, err := e.Create(context.Background(), req(fmt.Sprintf("n%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, ref := range []string{ids[3], ids[3][:12], "n3", "/n3"} {
		got, err := e.Inspect(context.Background(), ref)
		if err != nil || got.ID != ids[3] {
			t.Errorf("inspect %q = %s, %v", ref, got.ID, err)
		}
	}
	if _, err := e.Inspect(context.Background(), "nosuch"); !errdefs.IsNotFound(err) || err.Error() != "No such container: nosuch" {
		t.Errorf("missing: %v", err)
	}
	// With 20 random IDs, some one-character prefix is ambiguous.
	count := map[byte]int{}
	for _, id := range ids {
		count[id[0]]++
	}
	for c, n := range count {
		if n > 1 {
			_, err := e.Inspect(context.Background(), string(c))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "multiple IDs found with provided prefix") {
				t.Errorf("ambiguous prefix %q: %v", c, err)
			}
			break
		}
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	root := t.TempDir()
	j := coretest.NewJournal()
	e, err := core.Open(context.Background(), core.Options{Root: root, Pipeline: j.Pipeline()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Create(context.Background(), req("kept"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Open(context.Background(), core.Options{Root: root, Pipeline: j.Pipeline()}); !errdefs.IsUnavailable(err) {
		t.Errorf("second open of a root in use: %v, want Unavailable", err)
	}
	e.Close()
	e, err = core.Open(context.Background(), core.Options{Root: root, Pipeline: j.Pipeline()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got, err := e.Inspect(context.Background(), "kept")
	if err != nil || got.ID != r.ID {
		t.Fatalf("after reopen: %s, %v", got.ID, err)
	}
	if _, err := e.Create(context.Background(), req("kept")); !errdefs.IsConflict(err) {
		t.Errorf("name after reopen: %v, want Conflict", err)
	}
}

// TestReload swaps the network stage while creates are in flight: runs finish on the
// snapshot they started with, and containers are removed with the implementation that
// created them.
func TestReload(t *testing.T) {
	e, j := openFake(t)
	ctx := context.Background()
	first, err := e.Create(ctx, req("before"))
	if err != nil {
		t.Fatal(err)
	}
	p := j.Pipeline()
	j2 := coretest.NewJournal()
	next := p.With(core.Impl{Stage: spec.StageNetwork, Name: "fake", Config: "v2", New: j2.Pipeline().Stages[spec.StageNetwork].New})
	if err := e.Reload(ctx, &next); err != nil {
		t.Fatal(err)
	}
	second, err := e.Create(ctx, req("after"))
	if err != nil {
		t.Fatal(err)
	}
	if got := j2.Calls(); len(got) != 1 || got[0] != "network" {
		t.Errorf("new network stage calls = %v, want one network call", got)
	}
	rec, _ := e.Record(ctx, second.ID)
	if rec.Implementations[spec.StageNetwork] != "fake@v2" {
		t.Errorf("recorded network implementation %q, want fake@v2", rec.Implementations[spec.StageNetwork])
	}
	// The first container is removed with the old network stage, the second with the new.
	if err := e.Remove(ctx, first.ID, core.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, second.ID, core.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if left := append(j.Leftovers(), j2.Leftovers()...); len(left) != 0 {
		t.Errorf("leftovers: %v", left)
	}
	if c := j2.Calls(); c[len(c)-1] != "undo:network" {
		t.Errorf("new stage calls = %v, want its undo last", c)
	}
	bad := core.Pipeline{}
	if err := e.Reload(ctx, &bad); !errdefs.IsInvalidArgument(err) {
		t.Errorf("reload with an invalid pipeline: %v", err)
	}
	if _, err := e.Create(ctx, req("still")); err != nil {
		t.Errorf("create after a refused reload: %v", err)
	}
}

func TestListNewestFirst(t *testing.T) {
	e, _ := openFake(t)
	var ids []string
	for i := 0; i < 5; i++ {
		r, err := e.Create(context.Background(), req(fmt.Sprintf("n%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	list, err := e.List(context.Background(), core.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range list {
		if c.ID != ids[len(ids)-1-i] {
			t.Fatalf("list[%d] = %s (%v), want %s: newest first", i, c.Names, c.Created, ids[len(ids)-1-i])
		}
	}
}

// TestResolve removes a container whose network implementation is in neither the current
// pipeline nor its Known list, after a restart: Options.Resolve builds it from the recorded
// key for each removal (an implementation no snapshot uses is closed after its use, so that
// a plugin's process does not outlive it), and an unknown key or a resolver that answers with
// another key is refused.
func TestResolve(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	j := coretest.NewJournal()
	old := core.Impl{Stage: spec.StageNetwork, Name: "old", Config: "c1", New: j.Pipeline().Stages[spec.StageNetwork].New}
	p := j.Pipeline().With(old)
	e, err := core.Open(ctx, core.Options{Root: root, Pipeline: &p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.Create(ctx, req("first"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Create(ctx, req("second"))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()

	// The engine restarts with a pipeline that knows nothing of "old@c1".
	var mu sync.Mutex
	var asked []string
	resolve := func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
		mu.Lock()
		asked = append(asked, string(st)+"/"+key)
		mu.Unlock()
		if st == spec.StageNetwork && key == "old@c1" {
			return old, true
		}
		return core.Impl{}, false
	}
	j2 := coretest.NewJournal()
	e, err = core.Open(ctx, core.Options{Root: root, Pipeline: j2.Pipeline(), NoSync: true, Resolve: resolve})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Remove(ctx, first.ID, core.RemoveOptions{}); err != nil {
		t.Fatalf("remove with a resolved implementation: %v", err)
	}
	if err := e.Remove(ctx, second.ID, core.RemoveOptions{}); err != nil {
		t.Fatalf("remove with a resolved implementation: %v", err)
	}
	if len(asked) != 2 || asked[0] != "network/old@c1" || asked[1] != "network/old@c1" {
		t.Errorf("resolver asked %v, want network/old@c1 once per removal", asked)
	}
	if c := j.Calls(); c[len(c)-1] != "undo:network" {
		t.Errorf("old implementation calls %v, want its undo last", c)
	}
	// The other stages have the same keys in both pipelines and were undone by the new
	// journal's fakes; the network effect was the old implementation's to undo.
	for _, l := range j.Leftovers() {
		if strings.HasSuffix(l, ":network") {
			t.Errorf("network effect left behind: %v", l)
		}
	}

	// A resolver that answers with another key than the one asked is refused.
	e.Close()
	gone := j2.Pipeline().With(core.Impl{Stage: spec.StageNetwork, Name: "gone", New: old.New})
	e, err = core.Open(ctx, core.Options{Root: root, Pipeline: &gone, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r3, err := e.Create(ctx, req("third"))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	liar := func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
		return core.Impl{Stage: st, Name: "other", New: old.New}, true
	}
	e, err = core.Open(ctx, core.Options{Root: root, Pipeline: j2.Pipeline(), NoSync: true, Resolve: liar})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Remove(ctx, r3.ID, core.RemoveOptions{}); !errdefs.IsInternal(err) {
		t.Errorf("remove with a resolver answering another key: %v, want Internal", err)
	}
}

// TestStageTimeout gives the layer stage a deadline and makes it hang: the run fails with
// Unavailable, names the stage, and is undone.
func TestStageTimeout(t *testing.T) {
	j := coretest.NewJournal()
	p := j.Pipeline()
	layer := p.Stages[spec.StageLayer]
	layer.Timeout = 50 * time.Millisecond
	p.Stages[spec.StageLayer] = layer
	e, err := core.Open(context.Background(), core.Options{Root: t.TempDir(), Pipeline: p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	j.Inject("layer", coretest.HangCall)
	start := time.Now()
	_, err = e.Create(context.Background(), req("slow"))
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "stage layer (fake) did not finish within its deadline of 50ms") {
		t.Fatalf("create with a hanging stage: %v (class %v)", err, errdefs.ClassOf(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the deadline did not bound the run: %s", d)
	}
	if left := j.Leftovers(); len(left) != 0 {
		t.Errorf("leftovers: %v", left)
	}
}

// TestUndoCause checks that a rollback undoes with the zero cause and a removal with
// Remove set and RemoveVolumes as asked, so that a volume stage can keep what a removal
// must keep.
func TestUndoCause(t *testing.T) {
	e, j := openFake(t)
	ctx := context.Background()
	j.Inject("register", coretest.FailCall)
	if _, err := e.Create(ctx, req("failing")); err == nil {
		t.Fatal("create with a failing register stage succeeded")
	}
	var rolled string
	for _, c := range j.Calls() {
		if c == "undo:mkdir" {
			rolled = "yes"
		}
	}
	if rolled == "" {
		t.Fatal("the failed create did not undo mkdir")
	}
	j.Inject("register", coretest.NoFault)
	for _, v := range []bool{false, true} {
		resp, err := e.Create(ctx, req(fmt.Sprintf("c%v", v)))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := j.Cause(resp.ID, spec.StageMkdir); ok {
			t.Fatal("a successful create ran an undo")
		}
		if err := e.Remove(ctx, resp.ID, core.RemoveOptions{RemoveVolumes: v}); err != nil {
			t.Fatal(err)
		}
		got, ok := j.Cause(resp.ID, spec.StageMkdir)
		if want := (core.UndoCause{Remove: true, RemoveVolumes: v}); !ok || got != want {
			t.Errorf("remove (volumes %v): cause %+v (ran %v), want %+v", v, got, ok, want)
		}
	}
	if got := core.UndoCauseOf(ctx); got != (core.UndoCause{}) {
		t.Errorf("cause of a plain context = %+v, want the zero value", got)
	}
}

// seeUndo is a layer stage that notes the RootFS its Undo is given.
type seeUndo struct {
	core.Layerer
	mu   sync.Mutex
	seen []*spec.RootFS
}

func (s *seeUndo) Undo(ctx context.Context, rec *spec.Record) error {
	s.mu.Lock()
	s.seen = append(s.seen, rec.RootFS)
	s.mu.Unlock()
	return s.Layerer.Undo(ctx, rec)
}

// TestUndoGetsTheOutputOfAFinishedStage checks that when a run fails after a stage returned
// its output (the caller gave up while it ran, or a later stage failed), the stage's Undo is
// given that output, not only the ID: a stage may need it to find what it made.
func TestUndoGetsTheOutputOfAFinishedStage(t *testing.T) {
	for _, tc := range []struct {
		name, at string
		fault    coretest.Fault
	}{{"canceled during the stage", "layer", coretest.CancelCall}, {"a later stage failed", "mkdir", coretest.FailCall}} {
		t.Run(tc.name, func(t *testing.T) {
			j := coretest.NewJournal()
			p := j.Pipeline()
			inner := p.Stages[spec.StageLayer]
			see := &seeUndo{}
			p.Stages[spec.StageLayer] = core.Impl{Stage: spec.StageLayer, Name: inner.Name, New: func(ctx context.Context, env core.Env) (any, error) {
				v, err := inner.New(ctx, env)
				if err != nil {
					return nil, err
				}
				see.Layerer = v.(core.Layerer)
				return see, nil
			}}
			e, err := core.Open(context.Background(), core.Options{Root: t.TempDir(), Pipeline: p, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			j.Cancel = cancel
			j.Inject(tc.at, tc.fault)
			if _, err := e.Create(ctx, req("victim")); err == nil {
				t.Fatal("create succeeded, want a failure")
			}
			see.mu.Lock()
			defer see.mu.Unlock()
			if len(see.seen) != 1 || see.seen[0] == nil || see.seen[0].Driver != "fake" {
				t.Fatalf("the layer stage's Undo was given %v, want the RootFS it returned", see.seen)
			}
			if left := j.Leftovers(); len(left) != 0 {
				t.Errorf("left: %v", left)
			}
		})
	}
}
