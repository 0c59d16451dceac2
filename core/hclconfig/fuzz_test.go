package hclconfig_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/core/hclconfig"
)

// FuzzLoad feeds arbitrary sources to the loader: it must never panic, must return a plan
// or an error (never both), and a plan must render and turn into a valid pipeline.
// Seeds: every pipeline in testdata and the examples.
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"testdata/pipelines/*.hcl", "testdata/pipelines/*/*.hcl", "../../examples/pipelines/*.hcl"} {
		m, _ := filepath.Glob(glob)
		for _, p := range m {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("locals {\n  a = local.b\n  b = cidrsubnet(\"10.0.0.0/8\", 8, 300)\n}\n"))
	f.Add([]byte("check \"c\" {\n  before = \"layer\"\n  after = \"x\"\n  use = \"deny\"\n}\n"))
	f.Add([]byte("stage \"network\" {\n  use = \"plugin.netfile\"\n  config {\n    file = 1\n  }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		plan, diags := hclconfig.LoadSources("testdata", []hclconfig.Source{{Name: "fuzz.hcl", Bytes: src}}, withPlugins())
		if diags.HasErrors() {
			if plan != nil {
				t.Fatal("a plan came with errors")
			}
			var b bytes.Buffer
			if err := hclconfig.WriteDiagnostics(&b, diags, 80, false, hclconfig.Source{Name: "fuzz.hcl", Bytes: src}); err != nil {
				t.Fatal(err)
			}
			return
		}
		if plan == nil {
			t.Fatal("no plan and no error")
		}
		var b bytes.Buffer
		for _, g := range []hclconfig.GraphFormat{hclconfig.DOT, hclconfig.Mermaid} {
			if err := plan.WriteGraph(&b, g); err != nil {
				t.Fatal(err)
			}
		}
		if err := plan.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if err := plan.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		if _, err := plan.Pipeline(); err != nil {
			t.Fatalf("a plan without diagnostics does not make a valid pipeline: %v", err)
		}
	})
}
