package standard_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/pipelines"
	"github.com/slipwayhq/slipway/steps/network/ipam"
	"github.com/slipwayhq/slipway/steps/standard"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const examples = "../../examples/pipelines"

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is right):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// TestExamplesGolden resolves every example pipeline that needs no plugin binary with the
// built-in registry and compares its plan (text, JSON) and graphs (DOT, Mermaid) with the
// golden files in testdata/golden.
func TestExamplesGolden(t *testing.T) {
	for _, name := range []string{"default", "custom-network", "native-storage"} {
		t.Run(name, func(t *testing.T) {
			p, diags := hclconfig.Load(filepath.Join(examples, name+".hcl"), standard.Registry())
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p.Files = []string{name + ".hcl"} // independent of where the test runs
			var b bytes.Buffer
			if err := p.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", b.Bytes())
			b.Reset()
			if err := p.WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".json", b.Bytes())
			b.Reset()
			if err := p.WriteGraph(&b, hclconfig.DOT); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".dot", b.Bytes())
			b.Reset()
			if err := p.WriteGraph(&b, hclconfig.Mermaid); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".mmd", b.Bytes())
			if _, err := p.Pipeline(); err != nil {
				t.Errorf("Pipeline: %v", err)
			}
		})
	}
}

// TestDefaultExampleIsTheDefault checks that examples/pipelines/default.hcl, the embedded
// copy and an empty file all resolve to the implementations and configurations of
// Pipeline(Config{}): the same keys, which containers record.
func TestDefaultExampleIsTheDefault(t *testing.T) {
	want := standard.Pipeline(standard.Config{})
	file, diags := hclconfig.Load(filepath.Join(examples, "default.hcl"), standard.Registry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	embedded, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: pipelines.DefaultName, Bytes: pipelines.Default}}, standard.Registry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	empty, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "empty.hcl"}}, standard.Registry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for name, p := range map[string]*hclconfig.Plan{"default.hcl": file, "embedded": embedded, "empty": empty} {
		pl, err := p.Pipeline()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, st := range spec.Stages {
			if got, w := pl.Stages[st].Key(), want.Stages[st].Key(); got != w {
				t.Errorf("%s: stage %s is %q; want %q", name, st, got, w)
			}
		}
	}
	for i := range file.Stages {
		if a, b := string(file.Stages[i].Config), string(empty.Stages[i].Config); a != b {
			t.Errorf("stage %s: default.hcl config %s; the defaults are %s", file.Stages[i].Stage, a, b)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(examples, "default.hcl")), pipelines.Default) {
		t.Error("the embedded default differs from default.hcl")
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCustomNetworkBuilds builds the network stage of custom-network.hcl for real and
// checks that the allocator serves the networks the file describes.
func TestCustomNetworkBuilds(t *testing.T) {
	p, diags := hclconfig.Load(filepath.Join(examples, "custom-network.hcl"), standard.Registry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	impl, _ := p.Impl(spec.StageNetwork)
	if !strings.HasPrefix(impl.Key(), "ipam@") {
		t.Errorf("key = %q; want ipam@ID", impl.Key())
	}
	env, _ := coretest.NewEnvWith(t, core.Options{Root: tempRoot(t)})
	v, err := impl.New(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range v.(*ipam.Allocator).Networks() {
		got = append(got, fmt.Sprintf("%s %s %s %s %v", n.Name, n.Subnet, n.Gateway, n.Subnet6, n.UserDefined))
	}
	want := []string{
		"backend 10.90.2.0/24 10.90.2.1 fd00:ba:c::/64 true",
		"bridge 10.88.0.0/16 10.88.0.1 invalid Prefix false",
		"frontend 10.90.1.0/24 10.90.1.1 invalid Prefix true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("networks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPluginExampleNeedsItsBinaries: the plugin example names binaries that are built
// elsewhere; without them every plugin block is reported at its path attribute, and each
// use of a plugin is reported because this registry has no plugin host.
func TestPluginExampleNeedsItsBinaries(t *testing.T) {
	_, diags := hclconfig.Load(filepath.Join(examples, "netfile-plugin.hcl"), standard.Registry())
	var got []string
	for _, d := range diags {
		got = append(got, fmt.Sprintf("%s @ %s:%d:%d", d.Summary, filepath.Base(d.Subject.Filename), d.Subject.Start.Line, d.Subject.Start.Column))
	}
	want := []string{
		"Plugin binary not found @ netfile-plugin.hcl:7:12",
		"Plugin binary not found @ netfile-plugin.hcl:20:12",
		"Plugins not available @ netfile-plugin.hcl:12:13",
		"Plugins not available @ netfile-plugin.hcl:26:12",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRegistryDiagnostics checks the validation of the built-ins' configs, each at the
// attribute at fault.
func TestRegistryDiagnostics(t *testing.T) {
	cases := []struct{ name, config, want string }{
		{"bad subnet", "network \"a\" {\n  subnet = \"10.0.0/8\"\n}", "Invalid subnet @ 5:12"},
		{"ipv6 subnet", "network \"a\" {\n  subnet = \"fd00::/64\"\n}", "Invalid subnet @ 5:12"},
		{"host bits", "network \"a\" {\n  subnet = \"10.0.0.1/8\"\n}", "Invalid subnet @ 5:12"},
		{"tiny subnet", "network \"a\" {\n  subnet = \"10.0.0.0/31\"\n}", "Subnet too small @ 5:12"},
		{"gateway outside", "network \"a\" {\n  subnet = \"10.0.0.0/8\"\n  gateway = \"11.0.0.1\"\n}", "Invalid gateway @ 6:13"},
		{"reserved name", "network \"host\" {\n  subnet = \"10.0.0.0/8\"\n}", "Reserved network name @ 4:9"},
		{"duplicate network", "network \"a\" {\n  subnet = \"10.0.0.0/8\"\n}\nnetwork \"a\" {\n  subnet = \"11.0.0.0/8\"\n}", "Duplicate network @ 7:9"},
		{"bad subnet6", "network \"a\" {\n  subnet = \"10.0.0.0/8\"\n  subnet6 = \"10.1.0.0/16\"\n}", "Invalid subnet6 @ 6:13"},
		{"gateway6 outside", "network \"a\" {\n  subnet = \"10.0.0.0/8\"\n  subnet6 = \"fd00::/64\"\n  gateway6 = \"fd01::1\"\n}", "Invalid gateway6 @ 7:14"},
		{"gateway6 alone", "network \"a\" {\n  subnet = \"10.0.0.0/8\"\n  gateway6 = \"fd01::1\"\n}", "Gateway without subnet @ 6:14"},
		{"missing subnet", "network \"a\" {\n}", "Missing required argument @ 4:13"},
		{"wrong type", "network \"a\" {\n  subnet = \"10.0.0.0/8\"\n  user_defined = \"maybe\"\n}", "Unsuitable value type @ 6:19"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "stage \"network\" {\n  use = \"ipam\"\n  config {\n" + c.config + "\n  }\n}\n"
			_, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "t.hcl", Bytes: []byte(src)}}, standard.Registry())
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			d := diags.Errs()[0].(*hcl.Diagnostic)
			if got := fmt.Sprintf("%s @ %d:%d", d.Summary, d.Subject.Start.Line, d.Subject.Start.Column); got != c.want {
				t.Errorf("got %s (%s); want %s", got, d.Detail, c.want)
			}
		})
	}
	for _, c := range []struct{ src, want string }{
		{"stage \"layer\" {\n  use = \"snapshot\"\n  config {\n    snapshotter = \"zfs\"\n  }\n}\n", "Unknown snapshotter @ 4:19"},
		{"stage \"mkdir\" {\n  use = \"local\"\n  config {\n    remapped_root_gid = -1\n  }\n}\n", "Invalid remapped_root_gid @ 4:25"},
		{"stage \"mkdir\" {\n  use = \"local\"\n  config {\n    remapped_root_uid = -2\n  }\n}\n", "Invalid remapped_root_uid @ 4:25"},
		{"stage \"verify\" {\n  use = \"moby\"\n  config {\n  }\n}\n", "Unexpected config block @ 3:3"},
	} {
		_, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "t.hcl", Bytes: []byte(c.src)}}, standard.Registry())
		if !diags.HasErrors() {
			t.Errorf("%q: no error", c.src)
			continue
		}
		d := diags.Errs()[0].(*hcl.Diagnostic)
		if got := fmt.Sprintf("%s @ %d:%d", d.Summary, d.Subject.Start.Line, d.Subject.Start.Column); got != c.want {
			t.Errorf("got %s; want %s", got, c.want)
		}
	}
}

// TestRegistryKeys: a non-default config of each configurable built-in gets its own key.
func TestRegistryKeys(t *testing.T) {
	src := "stage \"mkdir\" {\n  use = \"local\"\n  config {\n    remapped_root_gid = 100000\n  }\n}\n"
	p, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "t.hcl", Bytes: []byte(src)}}, standard.Registry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	impl, _ := p.Impl(spec.StageMkdir)
	if !strings.HasPrefix(impl.Key(), "local@") {
		t.Errorf("mkdir key = %q; want local@ID", impl.Key())
	}
}
