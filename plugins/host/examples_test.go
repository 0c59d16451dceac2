package host_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/steps/standard"
)

// TestExamplePipelines loads every example pipeline that selects a plugin, with the example
// plugins built by the test in place of the binaries and digests the files leave to the
// operator: each config block must decode against the plugin's declared schema.
func TestExamplePipelines(t *testing.T) {
	const dir = "../../examples/pipelines"
	bins := map[string]string{
		"../plugins/netfile/netfile":         "github.com/slipwayhq/slipway/examples/plugins/netfile/cmd/netfile",
		"../plugins/storagecopy/storagecopy": "github.com/slipwayhq/slipway/examples/plugins/storagecopy/cmd/storagecopy",
		"../plugins/policycheck/policycheck": "github.com/slipwayhq/slipway/examples/plugins/policycheck/cmd/policycheck",
	}
	pluginRE := regexp.MustCompile(`(?m)^  path   = "([^"]+)"\n  sha256 = "0{64}"`)
	for _, tc := range []struct {
		file   string
		keys   map[spec.Stage]string
		checks int
	}{
		{"netfile-plugin.hcl", map[spec.Stage]string{spec.StageNetwork: "plugin:netfile@"}, 1},
		{"storagecopy-plugin.hcl", map[spec.Stage]string{spec.StageLayer: "plugin:storagecopy@"}, 0},
		{"policy-check.hcl", nil, 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			out := pluginRE.ReplaceAllStringFunc(string(src), func(m string) string {
				path := pluginRE.FindStringSubmatch(m)[1]
				pkg, ok := bins[path]
				if !ok {
					t.Fatalf("%s names an unknown plugin binary %s", tc.file, path)
				}
				bin, sha := plugintest.Build(t, pkg)
				return "  path   = \"" + bin + "\"\n  sha256 = \"" + sha + "\""
			})
			if out == string(src) {
				t.Fatalf("%s has no plugin block with a placeholder digest", tc.file)
			}
			reg := standard.Registry()
			reg.Plugins = host.NewBuilder(host.NewStore(plugintest.TempDir(t)), nil)
			plan, diags := hclconfig.LoadSources(dir, []hclconfig.Source{{Name: tc.file, Bytes: []byte(out)}}, reg)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			for st, prefix := range tc.keys {
				impl, _ := plan.Impl(st)
				if !strings.HasPrefix(impl.Key(), prefix) {
					t.Errorf("%s: %s recorded as %q, want %s...", tc.file, st, impl.Key(), prefix)
				}
			}
			if len(plan.Checks) != tc.checks {
				t.Errorf("%s: %d checks, want %d", tc.file, len(plan.Checks), tc.checks)
			}
			if _, err := plan.Pipeline(); err != nil {
				t.Error(err)
			}
		})
	}
}
