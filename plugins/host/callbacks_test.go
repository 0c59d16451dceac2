package host_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
)

const callbacksPkg = "github.com/slipwayhq/slipway/plugins/host/testdata/callbacks"

// TestHostCallbacks runs a network plugin that uses the host callbacks inside a real engine:
// it looks up a container by name and by ID prefix, resolves an image, looks up a
// container and an image that do not exist, and adds what it found as warnings. The
// warnings must reach the create response after the stage's own, with the right data, and
// the NotFound lookups must keep their class and the engine's text across the boundary.
func TestHostCallbacks(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := plugintest.TempDir(t)
	ref := plugintest.Install(t, root, callbacksPkg, "callbacks", nil)
	e, err := openEngine(t, root, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	target, err := e.Create(ctx, request("target"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(networkWarnings(target.Warnings), []string{"fixture: own warning"}) {
		t.Errorf("warnings of a create without lookups: %q, want only the stage's own", target.Warnings)
	}
	img, err := e.Images().Resolve(ctx, testImage, nil)
	if err != nil {
		t.Fatal(err)
	}

	req := request("probe")
	req.Config.Labels = map[string]string{"callbacks.container": "target", "callbacks.image": testImage, "callbacks.missing": "nosuch"}
	resp, err := e.Create(ctx, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	want := []string{
		"fixture: own warning",
		"container target: id=" + target.ID + " name=target image=" + img.ID,
		"image " + testImage + ": id=" + img.ID + " cmd=/bin/app",
		"missing nosuch: class=not found err=No such container: nosuch",
	}
	got := networkWarnings(resp.Warnings)
	if len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("warnings:\n%s\nwant, from the network stage:\n%s\nand the missing image", strings.Join(resp.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if w := got[len(want)]; !strings.HasPrefix(w, "missing image nosuch: class=not found err=No such image: nosuch") {
		t.Errorf("missing image: %q, want NotFound with the image store's text", w)
	}
	t.Logf("warnings: %q", resp.Warnings)
	rec, err := e.Record(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Network == nil || !slices.Equal(rec.Network.Warnings, got) {
		t.Errorf("recorded network warnings %v, want the network stage's of the response", rec.Network)
	}

	// By ID prefix, and a lookup failure of the plugin's own keeps its class.
	req = request("probe2")
	req.Config.Labels = map[string]string{"callbacks.container": target.ID[:12]}
	resp, err = e.Create(ctx, req)
	if err != nil || !slices.Contains(resp.Warnings, "container "+target.ID[:12]+": id="+target.ID+" name=target image="+img.ID) {
		t.Errorf("lookup by ID prefix: %v %q", err, resp.Warnings)
	}
	req = request("probe3")
	req.Config.Labels = map[string]string{"callbacks.container": "nosuch"}
	_, err = e.Create(ctx, req)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "fixture: lookup nosuch: No such container: nosuch") {
		t.Errorf("create with a failing lookup: %v (class %v), want NotFound with the engine's text", err, errdefs.ClassOf(err))
	}
	if _, err := e.Inspect(ctx, "probe3"); !errdefs.IsNotFound(err) {
		t.Errorf("the failed create left a container: %v", err)
	}
}

// networkWarnings returns the warnings from the network stage's on: the fixture's own
// warning comes first, then those it added through the host.
func networkWarnings(w []string) []string {
	if i := slices.Index(w, "fixture: own warning"); i >= 0 {
		return w[i:]
	}
	return nil
}

// TestHostCallbacksNeedEnv: a stage made without an engine environment (host.New) offers
// the plugin no callbacks.
func TestHostCallbacksNeedEnv(t *testing.T) {
	root := plugintest.TempDir(t)
	ref := plugintest.Install(t, root, callbacksPkg, "callbacks", nil)
	v, err := host.New(context.Background(), spec.StageNetwork, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.(core.Closer).Close()
	rec := plugintest.NetworkRecord(t)
	rec.Request.Config = &container.Config{}
	_, err = v.(core.Networker).ConfigureNetwork(context.Background(), rec)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "fixture: no host callbacks") {
		t.Errorf("ConfigureNetwork without an environment: %v, want the fixture's FailedPrecondition", err)
	}
}
