package volumes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/volumes"
)

// sink is a behavioural fake of the engine's event log: it records what it is given, and
// fails while failing is set, as a closed engine does.
type sink struct {
	mu      sync.Mutex
	evs     []core.Event
	failing bool
}

func (s *sink) Emit(ev core.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errdefs.Unavailable(errors.New("engine is closed"))
	}
	s.evs = append(s.evs, ev)
	return nil
}

// take returns the recorded events as "type action id k=v…" and forgets them.
func (s *sink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.evs {
		line := fmt.Sprintf("%s %s %s", ev.Type, ev.Action, ev.ID)
		for _, k := range []string{"driver", "reclaimed"} {
			if v, ok := ev.Attrs[k]; ok {
				line += " " + k + "=" + v
			}
		}
		if len(ev.Attrs) != 1 {
			line += fmt.Sprintf(" (%d attributes)", len(ev.Attrs))
		}
		out = append(out, line)
	}
	s.evs = nil
	return out
}

// TestEvents checks that the store logs moby's volume events for every way a volume is made
// or removed, once each, and none for what changes nothing.
func TestEvents(t *testing.T) {
	root, db := openDB(t)
	ctx := context.Background()
	ev := &sink{}
	s, err := volumes.New(ctx, root, db, nil, nil, volumes.WithEvents(ev))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, want ...string) {
		t.Helper()
		if got := ev.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: events\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	if _, err := s.Create(ctx, "data", volumes.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	check("create", "volume create data driver=local")
	if _, err := s.Create(ctx, "data", volumes.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	check("create of an existing volume")
	if _, err := s.Create(ctx, "x", volumes.CreateOptions{}); err == nil {
		t.Fatal("a one-letter name was accepted")
	}
	check("a refused create")
	anon, err := s.Create(ctx, "", volumes.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check("anonymous create", "volume create "+anon.Name+" driver=local")

	// A container's create: Acquire makes the volume, once.
	if _, created, err := s.Acquire(ctx, "web-data", "c1", volumes.CreateOptions{CreatedBy: "c1"}); err != nil || !created {
		t.Fatal(created, err)
	}
	if _, created, err := s.Acquire(ctx, "web-data", "c2", volumes.CreateOptions{}); err != nil || created {
		t.Fatal(created, err)
	}
	check("acquire", "volume create web-data driver=local")

	if err := s.Remove(ctx, "web-data"); !errdefs.IsConflict(err) {
		t.Fatalf("remove of a volume in use: %v", err)
	}
	if gone, err := s.RemoveIfUnused(ctx, "web-data", "c1"); err != nil || gone {
		t.Fatal(gone, err)
	}
	check("refused removals")
	s.Release("c1")
	s.Release("c2")
	if gone, err := s.RemoveIfUnused(ctx, "web-data", ""); err != nil || !gone {
		t.Fatal(gone, err)
	}
	check("rm -v", "volume destroy web-data driver=local")
	if err := s.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	check("remove", "volume destroy data driver=local")

	// Prune: a destroy for each volume, then moby's prune event with the bytes reclaimed,
	// also when nothing was removed.
	if _, err := s.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	check("prune", "volume destroy "+anon.Name+" driver=local", "volume prune  reclaimed=0")
	if _, err := s.Prune(ctx, true); err != nil {
		t.Fatal(err)
	}
	check("empty prune", "volume prune  reclaimed=0")

	// An event that cannot be logged leaves the change done.
	ev.failing = true
	if _, err := s.Create(ctx, "still", volumes.CreateOptions{}); err != nil {
		t.Errorf("create with the event log failing: %v", err)
	}
	if _, err := s.Get("still"); err != nil {
		t.Errorf("volume not made: %v", err)
	}
}
