package hclconfig_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the loader knows no implementation and no transport; the caller hands
// it a registry.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/slipwayhq/slipway/core/hclconfig").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"google.golang.org/grpc", "github.com/hashicorp/go-plugin",
		"github.com/slipwayhq/slipway/steps", "github.com/slipwayhq/slipway/plugins",
		"github.com/slipwayhq/slipway/hostapi", "github.com/slipwayhq/slipway/cmd",
		"github.com/slipwayhq/slipway/images",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("core/hclconfig depends on %s", dep)
			}
		}
	}
}
