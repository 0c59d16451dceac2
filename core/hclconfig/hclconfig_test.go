package hclconfig_test

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
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// netfileSum is the sha256 of testdata/bin/netfile, the stand-in plugin binary.
const netfileSum = "3aa59f64a09d8af412b871f7be0d93ae1d7b1cc20580fbd7e4b1cb4b787b10a1"

// The test registry has the shapes of the real one (steps/standard.Registry, which has its
// own tests): a stage without config, one with nested blocks, one with an attribute and a
// validator, and a built-in check.
type netConfig struct {
	Networks []struct {
		Name   string `hcl:"name,label" json:"name"`
		Subnet string `hcl:"subnet" json:"subnet"`
		Static bool   `hcl:"user_defined,optional" json:"user_defined"`
	} `hcl:"network,block" json:"networks"`
}

type layerConfig struct {
	Snapshotter string    `hcl:"snapshotter,optional" json:"snapshotter"`
	Range       hcl.Range `hcl:"snapshotter,attr_value_range" json:"-"`
}

type denyConfig struct {
	Images []string `hcl:"images,optional" json:"images"`
}

type fakeStage struct{ name string }

type denyCheck struct{ images []string }

func (d denyCheck) Check(ctx context.Context, rec *spec.Record) ([]string, error) {
	return nil, nil
}

func testRegistry() hclconfig.Registry {
	plain := func(st spec.Stage, name string) hclconfig.Builtin {
		return hclconfig.Builtin{Build: func(any) core.Impl {
			return core.Impl{Stage: st, Name: name, New: func(context.Context, core.Env) (any, error) { return fakeStage{name}, nil }}
		}}
	}
	reg := hclconfig.Registry{Stages: map[spec.Stage]map[string]hclconfig.Builtin{}, Defaults: map[spec.Stage]string{}}
	for _, st := range spec.Stages {
		reg.Stages[st] = map[string]hclconfig.Builtin{"builtin": plain(st, "builtin")}
		reg.Defaults[st] = "builtin"
	}
	reg.Stages[spec.StageNetwork]["ipam"] = hclconfig.Builtin{
		Schema: netConfig{},
		Build: func(cfg any) core.Impl {
			impl := plain(spec.StageNetwork, "ipam").Build(nil)
			impl.Config = hclconfig.ConfigID(cfg, &netConfig{})
			return impl
		},
	}
	reg.Stages[spec.StageLayer]["snapshot"] = hclconfig.Builtin{
		Schema: layerConfig{Snapshotter: "auto"},
		Validate: func(cfg any) hcl.Diagnostics {
			c := cfg.(*layerConfig)
			if c.Snapshotter != "auto" && c.Snapshotter != "native" {
				return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown snapshotter", Subject: c.Range.Ptr()}}
			}
			return nil
		},
		Build: func(cfg any) core.Impl {
			impl := plain(spec.StageLayer, "snapshot").Build(nil)
			impl.Config = hclconfig.ConfigID(cfg, layerConfig{Snapshotter: "auto"})
			return impl
		},
	}
	reg.Checks = map[string]hclconfig.Builtin{"deny": {
		Schema: denyConfig{},
		Build: func(cfg any) core.Impl {
			c := cfg.(*denyConfig)
			return core.Impl{Name: "deny", Config: hclconfig.ConfigID(c, denyConfig{}),
				New: func(context.Context, core.Env) (any, error) { return denyCheck{c.Images}, nil }}
		},
	}}
	return reg
}

// fakePlugins is a PluginBuilder whose plugins serve the network stage and checks with a
// "file" attribute, and refuse other stages.
type fakePlugins struct{ built []hclconfig.PluginRequest }

func (f *fakePlugins) Spec(req hclconfig.PluginRequest) (hcldec.Spec, error) {
	if req.Stage != "" && req.Stage != spec.StageNetwork {
		return nil, fmt.Errorf("it does not serve the %s stage", req.Stage)
	}
	return hcldec.ObjectSpec{"file": &hcldec.AttrSpec{Name: "file", Type: cty.String, Required: true}}, nil
}

func (f *fakePlugins) Build(req hclconfig.PluginRequest, config cty.Value) (core.Impl, error) {
	f.built = append(f.built, req)
	return core.Impl{New: func(context.Context, core.Env) (any, error) {
		if req.Stage == "" {
			return denyCheck{}, nil
		}
		return fakeStage{"plugin"}, nil
	}}, nil
}

func withPlugins() hclconfig.Registry {
	reg := testRegistry()
	reg.Plugins = &fakePlugins{}
	return reg
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
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

func renderAll(t *testing.T, p *hclconfig.Plan) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out["txt"] = append([]byte(nil), b.Bytes()...)
	b.Reset()
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	out["json"] = append([]byte(nil), b.Bytes()...)
	for _, f := range []hclconfig.GraphFormat{hclconfig.DOT, hclconfig.Mermaid} {
		b.Reset()
		if err := p.WriteGraph(&b, f); err != nil {
			t.Fatal(err)
		}
		ext := "dot"
		if f == hclconfig.Mermaid {
			ext = "mmd"
		}
		out[ext] = append([]byte(nil), b.Bytes()...)
	}
	return out
}

// TestGolden resolves every pipeline under testdata/pipelines (files and directories) and
// compares the plan (text, JSON) and graphs (DOT, Mermaid) with golden files.
func TestGolden(t *testing.T) {
	t.Setenv("SLIPWAY_TEST_SUBNET", "10.1.0.0/16")
	entries, err := os.ReadDir("testdata/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".hcl")
		t.Run(name, func(t *testing.T) {
			p, diags := hclconfig.Load(filepath.Join("testdata/pipelines", e.Name()), withPlugins())
			if diags.HasErrors() {
				t.Fatalf("diagnostics: %v", diags)
			}
			for ext, b := range renderAll(t, p) {
				golden(t, name+"."+ext, b)
			}
			pl, err := p.Pipeline()
			if err != nil {
				t.Fatalf("Pipeline: %v", err)
			}
			if len(pl.Stages) != len(spec.Stages) || len(pl.Checks) != len(p.Checks) {
				t.Errorf("Pipeline has %d stages and %d checks; want %d and %d", len(pl.Stages), len(pl.Checks), len(spec.Stages), len(p.Checks))
			}
			for _, c := range pl.Checks {
				ch, err := c.New(context.Background(), core.Env{})
				if err != nil || ch == nil {
					t.Errorf("check %s: New = %v, %v", c.Name, ch, err)
				}
			}
		})
	}
}

func TestDefaultsWhenEmpty(t *testing.T) {
	p, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "empty.hcl"}}, testRegistry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for i, s := range p.Stages {
		if s.Stage != spec.Stages[i] || !s.Default {
			t.Errorf("stage %d = %s default=%v; want %s default", i, s.Stage, s.Default, spec.Stages[i])
		}
	}
	if s := p.Stages[5]; s.Key != "snapshot" && s.Key != "builtin" {
		t.Errorf("layer key = %q", s.Key)
	}
}

func TestConfigIdentity(t *testing.T) {
	load := func(src string) *hclconfig.Plan {
		t.Helper()
		p, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "p.hcl", Bytes: []byte(src)}}, testRegistry())
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return p
	}
	key := func(p *hclconfig.Plan) string {
		impl, ok := p.Impl(spec.StageLayer)
		if !ok {
			t.Fatal("no layer stage")
		}
		return impl.Key()
	}
	auto := key(load(`stage "layer" { use = "snapshot" }`))
	autoExplicit := key(load("stage \"layer\" {\n use = \"snapshot\"\n config { snapshotter = \"auto\" }\n}"))
	native := key(load("stage \"layer\" {\n use = \"snapshot\"\n config { snapshotter = \"native\" }\n}"))
	native2 := key(load("stage \"layer\" {\n use = \"snapshot\"\n config {\n snapshotter = lower(\"NATIVE\")\n }\n}"))
	if auto != "snapshot" || autoExplicit != "snapshot" {
		t.Errorf("default config keys = %q, %q; want the bare name", auto, autoExplicit)
	}
	if !strings.HasPrefix(native, "snapshot@") || native != native2 {
		t.Errorf("native keys = %q, %q; want one snapshot@ID for the same config", native, native2)
	}
}

func TestFunctionsAndLocals(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root.txt"), []byte("/srv/slipway\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLIPWAY_TEST_NET", "front")
	src := `
state_root = trimspace(file("root.txt"))
locals {
  base = "10.20.0.0/16"
  sub  = cidrsubnet(local.base, 8, 3)   # refers to a local defined before it
  name = upper(env("SLIPWAY_TEST_NET"))
  gw   = cidrhost(local.sub, 1)
  six  = cidrsubnet("fd00::/48", 16, 258)
}
stage "network" {
  use = "ipam"
  config {
    network "a" { subnet = local.sub }
    network "b" { subnet = format("%s-%s", join("/", [local.name, "x"]), local.gw) }
    network "c" { subnet = local.six }
  }
}
`
	p, diags := hclconfig.LoadSources(dir, []hclconfig.Source{{Name: "f.hcl", Bytes: []byte(src)}}, testRegistry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if p.StateRoot != "/srv/slipway" {
		t.Errorf("StateRoot = %q", p.StateRoot)
	}
	var got string
	for _, s := range p.Stages {
		if s.Stage == spec.StageNetwork {
			got = string(s.Config)
		}
	}
	want := `{"networks":[{"name":"a","subnet":"10.20.3.0/24","user_defined":false},{"name":"b","subnet":"FRONT/x-10.20.3.1","user_defined":false},{"name":"c","subnet":"fd00:0:0:102::/64","user_defined":false}]}`
	if got != want {
		t.Errorf("network config = %s\nwant %s", got, want)
	}
}

func TestCidrFunctionErrors(t *testing.T) {
	for _, expr := range []string{`cidrsubnet("10.0.0.0/8", 30, 1)`, `cidrsubnet("10.0.0.0/24", 2, 4)`, `cidrsubnet("nope", 2, 1)`, `cidrhost("10.0.0.0/30", 4)`, `cidrhost("10.0.0.0/30", -1)`} {
		t.Run(expr, func(t *testing.T) {
			src := "locals { x = " + expr + " }\n"
			_, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "f.hcl", Bytes: []byte(src)}}, testRegistry())
			if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 1 {
				t.Errorf("diagnostics = %v; want an error on line 1", diags)
			}
		})
	}
}

func TestPipelineBuildsChecks(t *testing.T) {
	src := `check "deny" {
  after = "merge"
  use   = "deny"
  config { images = ["evil"] }
}
`
	p, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "f.hcl", Bytes: []byte(src)}}, testRegistry())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pl, err := p.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Checks) != 1 || pl.Checks[0].After != spec.StageMerge || pl.Checks[0].Name != "deny" {
		t.Fatalf("checks = %+v", pl.Checks)
	}
	ch, err := pl.Checks[0].New(context.Background(), core.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := ch.(denyCheck); !ok || len(d.images) != 1 || d.images[0] != "evil" {
		t.Errorf("checker = %#v; want denyCheck{[evil]}", ch)
	}
	if err := pl.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestCheckNotAChecker(t *testing.T) {
	reg := testRegistry()
	reg.Checks["broken"] = hclconfig.Builtin{Build: func(any) core.Impl {
		return core.Impl{Name: "broken", New: func(context.Context, core.Env) (any, error) { return fakeStage{}, nil }}
	}}
	p, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "f.hcl", Bytes: []byte("check \"x\" {\n before = \"verify\"\n use = \"broken\"\n}")}}, reg)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pl, err := p.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Checks[0].New(context.Background(), core.Env{}); err == nil || !strings.Contains(err.Error(), "not a checker") {
		t.Errorf("New = %v; want a not-a-checker error", err)
	}
}

func TestPluginBuilderSeesRequests(t *testing.T) {
	reg := testRegistry()
	fp := &fakePlugins{}
	reg.Plugins = fp
	p, diags := hclconfig.Load("testdata/pipelines/plugin.hcl", reg)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(fp.built) != 2 || fp.built[0].Stage != spec.StageNetwork || fp.built[1].Check != "policy" {
		t.Fatalf("plugin requests = %+v", fp.built)
	}
	if got := fp.built[0].Plugin; got.SHA256 != netfileSum || got.Path != filepath.Join("testdata", "pipelines", "..", "bin", "netfile") {
		t.Errorf("plugin block = %+v", got)
	}
	impl, _ := p.Impl(spec.StageNetwork)
	if impl.Name != "plugin.netfile" || impl.Config == "" {
		t.Errorf("plugin impl key = %q; want plugin.netfile@ID", impl.Key())
	}
}

func TestLoadErrors(t *testing.T) {
	if _, diags := hclconfig.Load("testdata/does-not-exist.hcl", testRegistry()); !diags.HasErrors() {
		t.Error("a missing file loaded")
	}
	dir := t.TempDir()
	if _, diags := hclconfig.Load(dir, testRegistry()); !diags.HasErrors() || diags[0].Summary != "Empty pipeline directory" {
		t.Errorf("empty directory: %v", diags)
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := []byte("stage \"netwrok\" {\n  use = \"ipam\"\n}\n")
	_, diags := hclconfig.LoadSources(".", []hclconfig.Source{{Name: "x.hcl", Bytes: src}}, testRegistry())
	var b bytes.Buffer
	if err := hclconfig.WriteDiagnostics(&b, diags, 0, false, hclconfig.Source{Name: "x.hcl", Bytes: src}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Error: Unknown stage", "on x.hcl:1:7:", `1: stage "netwrok" {`, `did you mean "network"?`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestGraphUnknownFormat(t *testing.T) {
	p, _ := hclconfig.LoadSources(".", nil, testRegistry())
	if err := p.WriteGraph(&bytes.Buffer{}, "svg"); err == nil {
		t.Error("svg accepted")
	}
	var d hclconfig.Duration
	if err := d.UnmarshalText([]byte("1m")); err != nil || d.String() != "1m0s" {
		t.Errorf("Duration = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("x")); err == nil {
		t.Error("bad duration accepted")
	}
}
