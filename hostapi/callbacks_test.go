package hostapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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

// blobLayer is a layer stage that reads a blob through the host while it prepares, records
// the undo cause it was given, and mounts when mounts is set.
type blobLayer struct {
	mu     sync.Mutex
	got    []byte
	err    error
	causes []core.UndoCause
}

func (l *blobLayer) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	h, ok := hostapi.HostFromContext(ctx)
	if !ok {
		return nil, errdefs.FailedPrecondition(errors.New("no host"))
	}
	rc, err := h.OpenBlob(ctx, rec.Name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	l.mu.Lock()
	l.got, l.err = b, err
	l.mu.Unlock()
	return &spec.RootFS{Driver: "test"}, err
}

func (l *blobLayer) Undo(ctx context.Context, rec *spec.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.causes = append(l.causes, core.UndoCauseOf(ctx))
	return nil
}

type mountingLayer struct{ blobLayer }

func (m *mountingLayer) Mount(ctx context.Context, rec *spec.Record) (string, error) {
	return "/mnt/" + rec.ID, nil
}

func (m *mountingLayer) Unmount(ctx context.Context, rec *spec.Record) error {
	if rec.ID == "busy" {
		return errdefs.Conflict(errors.New("target is busy"))
	}
	return nil
}

// memBlobs is an image store holding blobs in memory.
type memBlobs map[string][]byte

func (m memBlobs) Resolve(ctx context.Context, ref string, p *ocispec.Platform) (*spec.Image, error) {
	return nil, errdefs.NotFound(fmt.Errorf("No such image: %s", ref))
}

func (m memBlobs) OpenBlob(ctx context.Context, dgst string) (io.ReadCloser, error) {
	b, ok := m[dgst]
	if !ok {
		return nil, errdefs.NotFound(fmt.Errorf("blob %s not found", dgst))
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// TestOpenBlobStreams reads blobs of several sizes (empty, one chunk, several chunks)
// through the Host service and checks the bytes arrive whole, and that a missing blob and
// a bad digest keep their classes.
func TestOpenBlobStreams(t *testing.T) {
	l := &blobLayer{}
	c := connect(t, &backend{stages: hostapi.Stages{Layer: l}})
	if err := c.Configure(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	v, _ := hostapi.StageView(spec.StageLayer, c)
	lr := v.(core.Layerer)
	blobs := memBlobs{}
	for _, n := range []int{0, 10, 1 << 20, 2*(1<<20) + 12345} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		blobs[digest.FromBytes(b).String()] = b
	}
	ctx := hostapi.WithHostEnv(context.Background(), hostapi.HostEnv{Images: blobs})
	for d, want := range blobs {
		if _, err := lr.PrepareRootFS(ctx, &spec.Record{Name: d}); err != nil {
			t.Fatalf("blob of %d bytes: %v", len(want), err)
		}
		if l.err != nil || !bytes.Equal(l.got, want) {
			t.Fatalf("blob of %d bytes: read %d bytes, err %v", len(want), len(l.got), l.err)
		}
	}
	missing := digest.FromString("nothing").String()
	if _, err := lr.PrepareRootFS(ctx, &spec.Record{Name: missing}); !errdefs.IsNotFound(err) {
		t.Errorf("missing blob: %v, want NotFound", err)
	}
	if _, err := lr.PrepareRootFS(ctx, &spec.Record{Name: "../../etc/passwd"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad digest: %v, want InvalidArgument", err)
	}
}

// TestUndoCauseAndMountCrossTheWire checks that the undo cause reaches the plugin's undo,
// and that Mount and Unmount reach a layer stage that implements core.Mounter while one
// that does not answers with a FailedPrecondition saying so.
func TestUndoCauseAndMountCrossTheWire(t *testing.T) {
	m := &mountingLayer{}
	c := connect(t, &backend{stages: hostapi.Stages{Layer: m}})
	ctx := context.Background()
	if err := c.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	v, _ := hostapi.StageView(spec.StageLayer, c)
	causes := []core.UndoCause{{}, {Remove: true}, {Remove: true, RemoveVolumes: true}}
	for _, cause := range causes {
		if err := v.(core.Undoer).Undo(core.WithUndoCause(ctx, cause), &spec.Record{ID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(m.causes) != fmt.Sprint(causes) {
		t.Errorf("causes seen by the plugin: %v, want %v", m.causes, causes)
	}
	mt := v.(core.Mounter)
	if p, err := mt.Mount(ctx, &spec.Record{ID: "abc"}); err != nil || p != "/mnt/abc" {
		t.Errorf("Mount = %q, %v", p, err)
	}
	if err := mt.Unmount(ctx, &spec.Record{ID: "busy"}); !errdefs.IsConflict(err) {
		t.Errorf("Unmount of a busy mount: %v, want Conflict", err)
	}

	plain := connect(t, &backend{stages: hostapi.Stages{Layer: &blobLayer{}}})
	if err := plain.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	pv, _ := hostapi.StageView(spec.StageLayer, plain)
	if _, err := pv.(core.Mounter).Mount(ctx, &spec.Record{ID: "abc"}); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "does not support mount") {
		t.Errorf("Mount on a stage that cannot: %v, want FailedPrecondition", err)
	}
}
