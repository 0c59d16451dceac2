package standard_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/steps/standard"
)

// TestRebuildFromPlanConfig checks that every stage of the example pipelines can be rebuilt
// from the JSON config its plan records, with the same key: what removal needs after the
// pipeline file changed.
func TestRebuildFromPlanConfig(t *testing.T) {
	reg := standard.Registry()
	for _, f := range []string{"default.hcl", "custom-network.hcl", "native-storage.hcl"} {
		plan, diags := hclconfig.Load(filepath.Join("..", "..", "examples", "pipelines", f), reg)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", f, diags)
		}
		for _, sp := range plan.Stages {
			impl, err := hclconfig.Rebuild(reg, sp.Stage, sp.Use, sp.Config)
			if err != nil {
				t.Fatalf("%s: rebuild %s/%s: %v", f, sp.Stage, sp.Use, err)
			}
			if impl.Key() != sp.Key {
				t.Errorf("%s: %s rebuilt as %q, the plan recorded %q", f, sp.Stage, impl.Key(), sp.Key)
			}
		}
	}
	if _, err := hclconfig.Rebuild(reg, spec.StageNetwork, "nosuch", nil); err == nil {
		t.Error("rebuild of an unknown implementation succeeded")
	}
}

// TestPipelineCarriesTimeouts checks that a stage's timeout in HCL becomes its deadline.
func TestPipelineCarriesTimeouts(t *testing.T) {
	plan, diags := hclconfig.Load(filepath.Join("..", "..", "examples", "pipelines", "custom-network.hcl"), standard.Registry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, err := plan.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Stages[spec.StageNetwork].Timeout; got != 10*time.Second {
		t.Errorf("network stage timeout = %s, want the file's 10s", got)
	}
	if got := p.Stages[spec.StageLayer].Timeout; got != 0 {
		t.Errorf("layer stage timeout = %s, want none", got)
	}
}
