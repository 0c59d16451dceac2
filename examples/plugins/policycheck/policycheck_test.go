package policycheck_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/policycheck"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/steps/standard"
)

const pkg = "github.com/slipwayhq/slipway/examples/plugins/policycheck/cmd/policycheck"

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

func record(labels map[string]string) *spec.Record {
	c := &container.Config{Image: "x", Labels: labels}
	return &spec.Record{ID: core.NewID(), Merged: &spec.Merged{Config: c, HostConfig: &container.HostConfig{}}}
}

// TestCheck runs the check in process: the deny label, configured denials, required and
// warned labels.
func TestCheck(t *testing.T) {
	c := policycheck.New()
	c.Config = policycheck.Config{Deny: map[string]string{"env": "prod", "debug": "*"}, Require: []string{"owner"}, Warn: []string{"legacy"}}
	for _, tc := range []struct {
		labels map[string]string
		err    string
		warns  int
	}{
		{map[string]string{"owner": "a"}, "", 0},
		{map[string]string{"owner": "a", "legacy": "1"}, "", 1},
		{map[string]string{"owner": "a", "policy.deny": "true"}, "policy refuses the container: label policy.deny=true is denied", 0},
		{map[string]string{"owner": "a", "policy.deny": "false"}, "", 0},
		{map[string]string{"owner": "a", "env": "prod"}, "label env=prod is denied", 0},
		{map[string]string{"owner": "a", "env": "dev", "debug": "0"}, "label debug=0 is denied", 0},
		{map[string]string{}, "required label owner is missing", 0},
	} {
		w, err := c.Check(context.Background(), record(tc.labels))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.labels, err)
		case tc.err != "" && (!errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: %v, want FailedPrecondition containing %q", tc.labels, err, tc.err)
		case len(w) != tc.warns:
			t.Errorf("%v: warnings %v, want %d", tc.labels, w, tc.warns)
		}
	}
}

// TestCreateThroughEngine selects the plugin in an HCL pipeline as a check before the layer
// stage, and creates through a real engine: a container labelled policy.deny=true or
// missing the required label is refused with nothing left; a good one is created with the
// plugin's warning.
func TestCreateThroughEngine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: the default layer stage needs root for overlayfs snapshots (CI runs as root)")
	}
	ctx := context.Background()
	root, work := plugintest.TempDir(t), plugintest.TempDir(t)
	bin, sha := plugintest.Build(t, pkg)
	src := fmt.Sprintf(`plugin "policycheck" {
  path   = %q
  sha256 = %q
}

check "policy" {
  before = "layer"
  use    = "plugin.policycheck"
  config {
    require = ["owner"]
    warn    = ["legacy"]
  }
}
`, bin, sha)
	file := filepath.Join(work, "policy.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := standard.Registry()
	reg.Plugins = host.NewBuilder(host.NewStore(root), nil)
	plan, diags := hclconfig.Load(file, reg)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, err := plan.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	e := plugintest.Engine(t, root, func(core.Pipeline) core.Pipeline { return *p })
	if pids := plugintest.Processes(host.NewStore(root).Path("policycheck", sha)); len(pids) != 1 {
		t.Errorf("processes of the stored policycheck: %v, want one", pids)
	}
	create := func(name string, labels map[string]string) (container.CreateResponse, error) {
		return e.Create(ctx, spec.CreateRequest{Name: name, Config: &container.Config{Image: plugintest.TestImage, Labels: labels}})
	}
	for name, labels := range map[string]map[string]string{
		"denied":     {"owner": "a", "policy.deny": "true"},
		"no-owner":   {"team": "b"},
		"both-wrong": {"policy.deny": "true"},
	} {
		_, err := create(name, labels)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "policy refuses the container") {
			t.Errorf("create %s: %v, want the policy's FailedPrecondition", name, err)
		}
		if _, err := e.Inspect(ctx, name); !errdefs.IsNotFound(err) {
			t.Errorf("refused %s exists: %v", name, err)
		}
	}
	resp, err := create("good", map[string]string{"owner": "a", "legacy": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Warnings) != 1 || resp.Warnings[0] != "policy: label legacy=yes" {
		t.Errorf("warnings %q, want the policy's", resp.Warnings)
	}
	if err := e.Remove(ctx, resp.ID, core.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if list, err := e.List(ctx, core.ListOptions{All: true}); err != nil || len(list) != 0 {
		t.Errorf("containers left: %v %v", list, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("container directories left: %d", len(ents))
	}
}
