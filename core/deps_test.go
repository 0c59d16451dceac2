package core_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection fails when package core (or anything it imports) depends on the
// transports, the configuration language or the implementations built on top of it.
// core/hclconfig is the one package under core that may use HCL; it is not checked.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"github.com/slipwayhq/slipway/core",
		"github.com/slipwayhq/slipway/core/spec",
		"github.com/slipwayhq/slipway/core/errdefs",
		"github.com/slipwayhq/slipway/core/coretest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/hashicorp/hcl", "google.golang.org/grpc", "github.com/hashicorp/go-plugin",
		"github.com/slipwayhq/slipway/steps", "github.com/slipwayhq/slipway/plugins",
		"github.com/slipwayhq/slipway/hostapi", "github.com/slipwayhq/slipway/cmd",
		"github.com/slipwayhq/slipway/images",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("core depends on %s", dep)
			}
		}
	}
}
