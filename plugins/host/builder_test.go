package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/netfile"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/plugins/sdk"
	"github.com/slipwayhq/slipway/steps/standard"
)

// TestSchemaSpec decodes HCL against the spec made from netfile's declared schema: defaults
// fill what is not set, a wrong type and an unknown or missing attribute are diagnostics
// at their position.
func TestSchemaSpec(t *testing.T) {
	n := netfile.New()
	sp, err := host.SchemaSpec(sdk.Describe(sdk.Plugin{Name: "netfile", Network: n, Config: &n.Config}).ConfigSchema)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(src string) (string, hcl.Diagnostics) {
		f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		v, diags := hcldec.Decode(f.Body, sp, nil)
		if diags.HasErrors() {
			return "", diags
		}
		id, canon, err := host.NewStore(plugintest.TempDir(t)).SaveConfig(mustCtyJSON(t, v))
		if err != nil {
			t.Fatal(err)
		}
		if id != host.ConfigID(canon) {
			t.Errorf("config ID %s of %s", id, canon)
		}
		return string(canon), nil
	}
	got, diags := decode("dir = \"/x\"\nno_sync = true\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if want := `{"dir":"/x","network":"bridge","no_sync":true,"subnet":"10.88.0.0/16"}`; got != want {
		t.Errorf("decoded %s, want %s (defaults filled, unset optional fields left out)", got, want)
	}
	for _, tc := range []struct{ src, want string }{
		{"dir = \"/x\"\ncolour = \"blue\"\n", "Unsupported argument @ t.hcl:2:1"},
		{"subnet = \"10.1.0.0/24\"\n", "Missing required argument @ t.hcl:1:1"},
		{"dir = \"/x\"\nno_sync = \"maybe\"\n", "Incorrect attribute value type @ t.hcl:2:11"},
	} {
		_, diags := decode(tc.src)
		if len(diags) == 0 {
			t.Errorf("%q: no diagnostic, want %s", tc.src, tc.want)
			continue
		}
		d := diags[0]
		got := d.Summary
		if d.Subject != nil {
			got += fmt.Sprintf(" @ %s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		if got != tc.want {
			t.Errorf("%q: %s, want %s", tc.src, got, tc.want)
		}
	}
}

func mustCtyJSON(t *testing.T, v cty.Value) []byte {
	t.Helper()
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadPlan writes src as a pipeline file in dir and loads it with the built-ins and b.
func loadPlan(t *testing.T, dir, src string, b *host.Builder) (*hclconfig.Plan, hcl.Diagnostics) {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("p%d.hcl", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := standard.Registry()
	reg.Plugins = b
	return hclconfig.Load(p, reg)
}

func netfileHCL(sha, leases string) string {
	return fmt.Sprintf(`plugin "netfile" {
  path   = "netfile"
  sha256 = %q
}

stage "network" {
  use = "plugin.netfile"
  config {
    dir     = %q
    subnet  = "10.66.0.0/24"
    no_sync = true
  }
}
`, sha, leases)
}

// TestBuilder loads pipelines that use a plugin: the binary is installed into the store and
// the implementation launches the stored copy; the recorded key names the binary and the
// saved config; mistakes in the config block are diagnostics at their position.
func TestBuilder(t *testing.T) {
	root, work, leases := plugintest.TempDir(t), plugintest.TempDir(t), plugintest.TempDir(t)
	built, sha := plugintest.Build(t, netfilePkg)
	plugintest.CopyBinary(t, built, filepath.Join(work, "netfile"))
	store := host.NewStore(root)
	b := host.NewBuilder(store, nil)
	plan, diags := loadPlan(t, work, netfileHCL(sha, leases), b)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	impl, _ := plan.Impl(spec.StageNetwork)
	m := regexp.MustCompile(`^plugin:netfile@sha256:` + sha + `@([0-9a-f]{12})$`).FindStringSubmatch(impl.Key())
	if m == nil {
		t.Fatalf("recorded key %q, want plugin:netfile@sha256:%s@CONFIG", impl.Key(), sha)
	}
	cfg, err := store.Config(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"dir":%q,"network":"bridge","no_sync":true,"subnet":"10.66.0.0/24"}`, leases); string(cfg) != want {
		t.Errorf("saved config %s, want %s", cfg, want)
	}
	if err := store.Verify("netfile", sha); err != nil {
		t.Errorf("the binary is not in the store: %v", err)
	}
	if !b.UsesBinary("netfile", sha) || !b.UsesConfig(m[1]) || b.UsesBinary("other", sha) || b.UsesConfig("000000000000") {
		t.Errorf("UsesBinary and UsesConfig do not report what the builder installed and saved")
	}
	v, err := impl.New(context.Background(), core.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if p := plugintest.Processes(store.Path("netfile", sha)); len(p) != 1 {
		t.Errorf("processes of the stored copy: %v, want one", p)
	}
	if p := plugintest.Processes(filepath.Join(work, "netfile")); len(p) != 0 {
		t.Errorf("the operator's copy runs: %v", p)
	}
	rec := plugintest.NetworkRecord(t)
	out, err := v.(core.Networker).ConfigureNetwork(context.Background(), rec)
	if err != nil || out.Networks["bridge"] == nil || !strings.HasPrefix(out.Networks["bridge"].IPAddress.String(), "10.66.0.") {
		t.Fatalf("configure through the built implementation: %+v %v", out, err)
	}
	v.(core.Networker).Undo(context.Background(), rec)
	v.(core.Closer).Close()
	assertNoProcess(t, store.Path("netfile", sha))

	for _, tc := range []struct{ name, src, want string }{
		{"unknown attribute", strings.Replace(netfileHCL(sha, leases), "no_sync = true", "colour = \"blue\"", 1), "Unsupported argument @ 11:5"},
		{"missing required", strings.Replace(netfileHCL(sha, leases), "dir     = ", "network = ", 1), "Missing required argument @ 8:10"},
		{"wrong type", strings.Replace(netfileHCL(sha, leases), "no_sync = true", "no_sync = \"maybe\"", 1), "Incorrect attribute value type @ 11:15"},
		{"stage not served", strings.Replace(netfileHCL(sha, leases), `stage "network"`, `stage "layer"`, 1), "Plugin cannot be used here @ 7:9"},
		{"upper-case name", strings.NewReplacer(`plugin "netfile"`, `plugin "NetFile"`, "plugin.netfile", "plugin.NetFile").Replace(netfileHCL(sha, leases)), "Plugin cannot be used here @ 7:9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := loadPlan(t, work, tc.src, b)
			var got []string
			for _, d := range diags {
				if d.Subject != nil {
					got = append(got, fmt.Sprintf("%s @ %d:%d", d.Summary, d.Subject.Start.Line, d.Subject.Start.Column))
				}
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("diagnostics %q, want [%s]\n%v", got, tc.want, diags)
			}
		})
	}
}

// openPlan opens an engine on root with the plan's pipeline and the store's resolver.
func openPlan(t *testing.T, root string, p *core.Pipeline, store *host.Store) *core.Engine {
	t.Helper()
	o := standard.Options(standard.Config{NoSync: true})
	o.Root, o.Pipeline, o.UndoTimeout = root, p, 10*time.Second
	o.Resolve = host.Resolver(store, nil)
	e, err := core.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func loadPipeline(t *testing.T, dir, src string, b *host.Builder) *core.Pipeline {
	t.Helper()
	plan, diags := loadPlan(t, dir, src, b)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, err := plan.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRemoveWithRecordedPlugin creates containers with plugin A (netfile), then switches
// the pipeline to plugin B (another binary) and then to the built-in IPAM; deletes the
// operator's copies of both binaries and restarts the engine with the default pipeline.
// Every container is removed with the binary and config that created it (the store's
// copies, found by Options.Resolve), and nothing is left: no lease in A's or B's file.
func TestRemoveWithRecordedPlugin(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root, work, leasesA, leasesB := plugintest.TempDir(t), plugintest.TempDir(t), plugintest.TempDir(t), plugintest.TempDir(t)
	builtA, shaA := plugintest.Build(t, netfilePkg)
	builtB, shaB := plugintest.Build(t, misbehavePkg)
	plugintest.CopyBinary(t, builtA, filepath.Join(work, "netfile"))
	plugintest.CopyBinary(t, builtB, filepath.Join(work, "misbehave"))
	store := host.NewStore(root)
	b := host.NewBuilder(store, nil)

	pA := loadPipeline(t, work, netfileHCL(shaA, leasesA), b)
	e := openPlan(t, root, pA, store)
	loadTestImage(t, e)
	a1, err := e.Create(ctx, request("a1"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := e.Create(ctx, request("a2"))
	if err != nil {
		t.Fatal(err)
	}
	if p := plugintest.Processes(store.Path("netfile", shaA)); len(p) != 1 {
		t.Errorf("processes of A's stored copy: %v, want one", p)
	}

	pB := loadPipeline(t, work, fmt.Sprintf(`plugin "misbehave" {
  path   = "misbehave"
  sha256 = %q
}
stage "network" {
  use = "plugin.misbehave"
  config {
    netfile {
      dir     = %q
      subnet  = "10.67.0.0/24"
      no_sync = true
    }
  }
}
`, shaB, leasesB), b)
	if err := e.Reload(ctx, pB); err != nil {
		t.Fatal(err)
	}
	b1, err := e.Create(ctx, request("b1"))
	if err != nil {
		t.Fatal(err)
	}
	def := standard.Options(standard.Config{NoSync: true}).Pipeline
	if err := e.Reload(ctx, def); err != nil {
		t.Fatal(err)
	}
	i1, err := e.Create(ctx, request("i1"))
	if err != nil {
		t.Fatal(err)
	}
	// In the same engine, a1 goes with A, which this engine built before.
	if err := e.Remove(ctx, a1.ID, core.RemoveOptions{}); err != nil {
		t.Fatalf("remove a1 after the switch: %v", err)
	}
	if l, _ := netfile.ReadLeases(leasesA); len(l) != 1 || !l[a2.ID].IsValid() {
		t.Errorf("A's leases after removing a1: %v, want a2's only", l)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoProcess(t, store.Path("netfile", shaA))
	assertNoProcess(t, store.Path("misbehave", shaB))

	// The operator deletes the original files; the engine restarts with the default
	// pipeline, which names neither plugin.
	os.Remove(filepath.Join(work, "netfile"))
	os.Remove(filepath.Join(work, "misbehave"))
	e = openPlan(t, root, standard.Options(standard.Config{NoSync: true}).Pipeline, store)
	for _, id := range []string{a2.ID, b1.ID, i1.ID} {
		if err := e.Remove(ctx, id, core.RemoveOptions{}); err != nil {
			t.Fatalf("remove %s after the restart: %v", id, err)
		}
	}
	assertClean(t, e, leasesA, 2)
	if l, err := netfile.ReadLeases(leasesB); err != nil || len(l) != 0 {
		t.Errorf("B's leases left: %v %v", l, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoProcess(t, store.Path("netfile", shaA))
	assertNoProcess(t, store.Path("misbehave", shaB))

	// A container whose plugin binary is gone from the store cannot be removed: the error
	// names what is missing, and the container stays for a later try.
	e = openPlan(t, root, pA, store)
	loadTestImage(t, e)
	a3, err := e.Create(ctx, request("a3"))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := os.Remove(store.Path("netfile", shaA)); err != nil {
		t.Fatal(err)
	}
	e = openPlan(t, root, standard.Options(standard.Config{NoSync: true}).Pipeline, store)
	err = e.Remove(ctx, a3.ID, core.RemoveOptions{})
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("remove with the stored binary deleted: %v, want it to say the binary is missing", err)
	}
}
