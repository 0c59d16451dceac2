package hostapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
)

// hostNet is a network stage that exercises the host callbacks as its record's name says.
type hostNet struct {
	mu    sync.Mutex
	saved *hostapi.CallHost
	errs  []error
}

func (n *hostNet) note(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.errs = append(n.errs, err)
}

func (n *hostNet) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	h, ok := hostapi.HostFromContext(ctx)
	if !ok {
		return nil, errdefs.FailedPrecondition(errors.New("no host"))
	}
	switch rec.Name {
	case "save":
		n.mu.Lock()
		n.saved = h
		n.mu.Unlock()
	case "flood":
		for i := 0; i <= hostapi.MaxWarnings; i++ {
			if err := h.Warn(ctx, fmt.Sprint("w", i)); err != nil {
				n.note(err)
			}
		}
	case "lookup":
		_, err := h.Container(ctx, "other")
		n.note(err)
		_, err = h.Image(ctx, "busybox")
		n.note(err)
	}
	return &spec.Network{NetworkMode: "none"}, nil
}

func (n *hostNet) Undo(ctx context.Context, rec *spec.Record) error {
	h, ok := hostapi.HostFromContext(ctx)
	if !ok {
		return errdefs.FailedPrecondition(errors.New("no host in undo"))
	}
	return h.Warn(ctx, "from undo")
}

// oneContainer is a core.Host that knows one container.
type oneContainer struct{ rec *spec.Record }

func (o oneContainer) Container(ctx context.Context, ref string) (*spec.Record, error) {
	if ref == o.rec.ID || ref == o.rec.Name {
		return o.rec, nil
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
}

func (o oneContainer) Containers(ctx context.Context) ([]*spec.Record, error) {
	return []*spec.Record{o.rec}, nil
}

// TestCallbackRules checks the limits of the callbacks over a real go-plugin connection:
// no warnings from an undo, none after the call ended, at most MaxWarnings per call, no
// image lookups when the host offers no image store, and no callbacks without a HostEnv.
func TestCallbackRules(t *testing.T) {
	n := &hostNet{}
	c := connect(t, &backend{stages: hostapi.Stages{Network: n}})
	if err := c.Configure(context.Background(), nil); err != nil { // dials the Host service
		t.Fatal(err)
	}
	v, err := hostapi.StageView(spec.StageNetwork, c)
	if err != nil {
		t.Fatal(err)
	}
	nw := v.(core.Networker)
	env := hostapi.HostEnv{Host: oneContainer{&spec.Record{ID: "abc", Name: "other"}}}
	ctx := hostapi.WithHostEnv(context.Background(), env)

	if _, err := nw.ConfigureNetwork(context.Background(), &spec.Record{Name: "plain"}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("call without a HostEnv: %v, want the stage's FailedPrecondition (no callbacks)", err)
	}
	if err := nw.Undo(ctx, &spec.Record{Name: "undo"}); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "carries no warnings") {
		t.Errorf("warning from an undo: %v, want FailedPrecondition", err)
	}

	if _, err := nw.ConfigureNetwork(ctx, &spec.Record{Name: "save"}); err != nil {
		t.Fatal(err)
	}
	if err := n.saved.Warn(ctx, "late"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "not in progress") {
		t.Errorf("warning after the call ended: %v, want FailedPrecondition", err)
	}

	out, err := nw.ConfigureNetwork(ctx, &spec.Record{Name: "flood"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Warnings) != hostapi.MaxWarnings || len(n.errs) != 1 || !errdefs.IsInvalidArgument(n.errs[0]) {
		t.Errorf("flood: %d warnings kept, errors %v; want %d and one InvalidArgument", len(out.Warnings), n.errs, hostapi.MaxWarnings)
	}

	n.errs = nil
	if _, err := nw.ConfigureNetwork(ctx, &spec.Record{Name: "lookup"}); err != nil {
		t.Fatal(err)
	}
	if len(n.errs) != 2 || n.errs[0] != nil || !errdefs.IsFailedPrecondition(n.errs[1]) {
		t.Errorf("lookups: %v; want the container found and the image refused (no image store offered)", n.errs)
	}
}
