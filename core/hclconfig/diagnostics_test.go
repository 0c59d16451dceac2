package hclconfig_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/slipwayhq/slipway/core/hclconfig"
)

func pos(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
}

// TestDiagnostics loads one broken pipeline per error kind and checks the summary and the
// exact file:line:col of the diagnostic. The files live in testdata (plugin paths are
// relative to it).
func TestDiagnostics(t *testing.T) {
	const sum = `"` + netfileSum + `"`
	cases := []struct {
		name    string
		src     string
		plugins bool
		want    string // "Summary @ file:line:col"
	}{
		{name: "syntax", src: "stage \"network\" {\n  use = \n}\n", want: "Invalid expression @ t.hcl:2:9"},
		{name: "unknown stage", src: "stage \"netwrok\" {\n  use = \"ipam\"\n}\n", want: "Unknown stage @ t.hcl:1:7"},
		{name: "unknown implementation", src: "stage \"network\" {\n  use = \"cni\"\n}\n", want: "Unknown implementation @ t.hcl:2:9"},
		{name: "implementation of another stage", src: "stage \"layer\" {\n  use = \"ipam\"\n}\n", want: "Unknown implementation @ t.hcl:2:9"},
		{name: "missing use", src: "stage \"network\" {\n}\n", want: "Missing required argument @ t.hcl:1:17"},
		{name: "duplicate stage", src: "stage \"layer\" {\n  use = \"snapshot\"\n}\nstage \"layer\" {\n  use = \"builtin\"\n}\n", want: "Duplicate stage block @ t.hcl:4:7"},
		{name: "duplicate implementation", src: "plugin \"netfile\" {\n  path = \"bin/netfile\"\n  sha256 = " + sum + "\n}\nplugin \"netfile\" {\n  path = \"bin/netfile\"\n  sha256 = " + sum + "\n}\n", want: "Duplicate plugin @ t.hcl:5:8"},
		{name: "duplicate use", src: "stage \"layer\" {\n  use = \"snapshot\"\n  use = \"builtin\"\n}\n", want: "Attribute redefined @ t.hcl:3:3"},
		{name: "duplicate config block", src: "stage \"layer\" {\n  use = \"snapshot\"\n  config {}\n  config {}\n}\n", want: "Duplicate config block @ t.hcl:4:3"},
		{name: "unknown top-level block", src: "pipeline \"x\" {\n}\n", want: "Unsupported block type @ t.hcl:1:1"},
		{name: "unknown stage attribute", src: "stage \"layer\" {\n  use = \"snapshot\"\n  retries = 3\n}\n", want: "Unsupported argument @ t.hcl:3:3"},
		{name: "unknown config attribute", src: "stage \"layer\" {\n  use = \"snapshot\"\n  config {\n    driver = \"native\"\n  }\n}\n", want: "Unsupported argument @ t.hcl:4:5"},
		{name: "unknown config block", src: "stage \"network\" {\n  use = \"ipam\"\n  config {\n    subnet \"x\" {\n    }\n  }\n}\n", want: "Unsupported block type @ t.hcl:4:5"},
		{name: "config for an implementation without one", src: "stage \"verify\" {\n  use = \"builtin\"\n  config {\n  }\n}\n", want: "Unexpected config block @ t.hcl:3:3"},
		{name: "wrong type", src: "stage \"layer\" {\n  use = \"snapshot\"\n  config {\n    snapshotter = [\"native\"]\n  }\n}\n", want: "Unsuitable value type @ t.hcl:4:19"},
		{name: "wrong type of use", src: "stage \"layer\" {\n  use = [1]\n}\n", want: "Incorrect attribute value type @ t.hcl:2:9"},
		{name: "validator", src: "stage \"layer\" {\n  use = \"snapshot\"\n  config {\n    snapshotter = \"zfs\"\n  }\n}\n", want: "Unknown snapshotter @ t.hcl:4:19"},
		{name: "bad timeout", src: "stage \"layer\" {\n  use = \"snapshot\"\n  timeout = \"soon\"\n}\n", want: "Invalid timeout @ t.hcl:3:13"},
		{name: "negative timeout", src: "stage \"layer\" {\n  use = \"snapshot\"\n  timeout = \"-1s\"\n}\n", want: "Invalid timeout @ t.hcl:3:13"},
		{name: "missing plugin file", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin/nope\"\n  sha256 = " + sum + "\n}\n", want: "Plugin binary not found @ t.hcl:2:12"},
		{name: "plugin path is a directory", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin\"\n  sha256 = " + sum + "\n}\n", want: "Plugin binary not found @ t.hcl:2:12"},
		{name: "checksum mismatch", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin/netfile\"\n  sha256 = \"" + strings.Repeat("ab", 32) + "\"\n}\n", want: "Plugin checksum mismatch @ t.hcl:3:12"},
		{name: "malformed checksum", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin/netfile\"\n  sha256 = \"abc\"\n}\n", want: "Invalid sha256 @ t.hcl:3:12"},
		{name: "missing checksum", plugins: true, src: "plugin \"netfile\" {\n  path = \"bin/netfile\"\n}\n", want: "Missing required argument @ t.hcl:1:18"},
		{name: "undeclared plugin", plugins: true, src: "stage \"network\" {\n  use = \"plugin.netfle\"\n}\n", want: "Undeclared plugin @ t.hcl:2:9"},
		{name: "plugins not available", src: "plugin \"netfile\" {\n  path   = \"bin/netfile\"\n  sha256 = " + sum + "\n}\nstage \"network\" {\n  use = \"plugin.netfile\"\n}\n", want: "Plugins not available @ t.hcl:6:9"},
		{name: "plugin refuses the stage", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin/netfile\"\n  sha256 = " + sum + "\n}\nstage \"layer\" {\n  use = \"plugin.netfile\"\n}\n", want: "Plugin cannot be used here @ t.hcl:6:9"},
		{name: "plugin config against its schema", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin/netfile\"\n  sha256 = " + sum + "\n}\nstage \"network\" {\n  use = \"plugin.netfile\"\n  config {\n    file = \"x\"\n    mode = 1\n  }\n}\n", want: "Unsupported argument @ t.hcl:9:5"},
		{name: "plugin config missing attribute", plugins: true, src: "plugin \"netfile\" {\n  path   = \"bin/netfile\"\n  sha256 = " + sum + "\n}\nstage \"network\" {\n  use = \"plugin.netfile\"\n  config {\n  }\n}\n", want: "Missing required argument @ t.hcl:7:10"},
		{name: "check at unknown stage", src: "check \"c\" {\n  before = \"lyer\"\n  use = \"deny\"\n}\n", want: "Unknown stage @ t.hcl:2:12"},
		{name: "check before and after", src: "check \"c\" {\n  before = \"layer\"\n  after = \"mkdir\"\n  use = \"deny\"\n}\n", want: "Impossible check placement @ t.hcl:3:3"},
		{name: "check without placement", src: "check \"c\" {\n  use = \"deny\"\n}\n", want: "Missing check placement @ t.hcl:1:1"},
		{name: "unknown check", src: "check \"c\" {\n  after = \"merge\"\n  use = \"opa\"\n}\n", want: "Unknown implementation @ t.hcl:3:9"},
		{name: "duplicate check", src: "check \"c\" {\n  after = \"merge\"\n  use = \"deny\"\n}\ncheck \"c\" {\n  after = \"layer\"\n  use = \"deny\"\n}\n", want: "Duplicate check @ t.hcl:5:7"},
		{name: "unknown local", src: "stage \"layer\" {\n  use = local.impl\n}\n", want: "Unsupported attribute @ t.hcl:2:14"},
		{name: "local cycle", src: "locals {\n  a = local.b\n  b = local.a\n}\n", want: "Cycle in local values @ t.hcl:2:3"},
		{name: "duplicate local", src: "locals {\n  a = 1\n}\nlocals {\n  a = 2\n}\n", want: "Duplicate local value @ t.hcl:5:3"},
		{name: "duplicate state_root", src: "state_root = \"/a\"\nstate_root = \"/b\"\n", want: "Attribute redefined @ t.hcl:2:1"},
		{name: "unknown function", src: "state_root = getenv(\"X\")\n", want: "Call to unknown function @ t.hcl:1:14"},
		{name: "file function error", src: "state_root = file(\"nope.txt\")\n", want: "Error in function call @ t.hcl:1:14"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := testRegistry()
			if c.plugins {
				reg.Plugins = &fakePlugins{}
			}
			plan, diags := hclconfig.LoadSources("testdata", []hclconfig.Source{{Name: "t.hcl", Bytes: []byte(c.src)}}, reg)
			if !diags.HasErrors() {
				t.Fatalf("no error; plan %+v", plan)
			}
			if plan != nil {
				t.Error("a plan came with errors")
			}
			got := diags.Errs()[0].(*hcl.Diagnostic)
			if s := got.Summary + " @ " + pos(got); s != c.want {
				t.Errorf("first diagnostic = %s (%s); want %s\nall: %v", s, got.Detail, c.want, diags)
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without a range: %v", d)
				}
			}
		})
	}
}

// TestDiagnosticsAllAtOnce checks that one load reports every problem, in every file of a
// directory, not just the first.
func TestDiagnosticsAllAtOnce(t *testing.T) {
	src := `stage "netwrok" {
  use = "ipam"
}
stage "layer" {
  use = "snapshot"
  config {
    snapshotter = "zfs"
  }
}
plugin "netfile" {
  path   = "bin/nope"
  sha256 = "` + netfileSum + `"
}
check "c" {
  use = "deny"
}
stage "network" {
  use = "plugin.ghost"
}
`
	_, diags := hclconfig.LoadSources("testdata", []hclconfig.Source{{Name: "a.hcl", Bytes: []byte(src)}, {Name: "b.hcl", Bytes: []byte("stage \"mkdir\" {\n  use = \"tmpfs\"\n}\n")}}, testRegistry())
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary+" @ "+pos(d))
	}
	want := []string{
		"Plugin binary not found @ a.hcl:11:12",
		"Unknown stage @ a.hcl:1:7",
		"Unknown snapshotter @ a.hcl:7:19",
		"Undeclared plugin @ a.hcl:18:9",
		"Unknown implementation @ b.hcl:2:9",
		"Missing check placement @ a.hcl:14:1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
