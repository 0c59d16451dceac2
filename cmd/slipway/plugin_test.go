package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/steps/standard"
)

const netfilePkg = "github.com/slipwayhq/slipway/examples/plugins/netfile/cmd/netfile"

// slipwayIn runs the CLI in this process and returns its stdout, stderr and exit status.
func slipwayIn(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := slipwayIn(args...)
	if code != 0 {
		t.Fatalf("slipway %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// TestPluginCommands drives slipway plugin describe|install|ls|rm with the netfile example
// built by the test, and a container created through a pipeline that selects it: rm of the
// plugin is a Conflict while the container exists, and works once it is removed.
func TestPluginCommands(t *testing.T) {
	root, work, leases := plugintest.TempDir(t), plugintest.TempDir(t), plugintest.TempDir(t)
	t.Cleanup(host.Shutdown)
	built, sha := plugintest.Build(t, netfilePkg)
	bin := filepath.Join(work, "netfile")
	plugintest.CopyBinary(t, built, bin)
	store := host.NewStore(root)

	out := mustRun(t, "--root", root, "plugin", "describe", bin)
	for _, want := range []string{`"name": "netfile"`, `"stages": [` + "\n" + `    "network"`, `"name": "dir"`, `"digest": "sha256:` + sha + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("describe of the file: missing %q in\n%s", want, out)
		}
	}
	if _, err := os.Stat(store.Dir()); err == nil {
		t.Errorf("describe of a file installed it")
	}
	notPlugin := filepath.Join(work, "notplugin")
	os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755)
	if _, errs, code := slipwayIn("--root", root, "plugin", "install", notPlugin); code != 1 || !strings.Contains(errs, "is not a usable Slipway plugin") {
		t.Errorf("install of a script: exit %d, %s", code, errs)
	}
	if l, _ := store.List(); len(l) != 0 {
		t.Errorf("a refused install left %v in the store", l)
	}

	out = mustRun(t, "--root", root, "plugin", "install", bin)
	if want := "Installed netfile sha256:" + sha + " "; !strings.HasPrefix(out, want) || !strings.Contains(out, "serves network") {
		t.Errorf("install: %q, want %q... serves network", out, want)
	}
	if err := store.Verify("netfile", sha); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "--root", root, "plugin", "describe", "netfile")
	if !strings.Contains(out, `"path": "`+store.Path("netfile", sha)+`"`) {
		t.Errorf("describe by name does not use the stored binary:\n%s", out)
	}
	if _, errs, code := slipwayIn("--root", root, "plugin", "describe", "nosuch"); code != 1 || !strings.Contains(errs, "no such plugin: nosuch") {
		t.Errorf("describe of an unknown name: exit %d, %s", code, errs)
	}

	if os.Geteuid() != 0 {
		t.Skip("skipped the rest: creating containers with the default layer stage needs root for overlayfs (CI runs as root)")
	}
	lsRE := regexp.MustCompile(`(?m)^netfile +sha256:` + sha[:12] + ` +[0-9.]+[kM]?B +(\d+) +yes$`)
	out = mustRun(t, "--root", root, "plugin", "ls")
	if m := lsRE.FindStringSubmatch(out); m == nil || m[1] != "0" {
		t.Errorf("plugin ls before any container:\n%s", out)
	}
	if err := writeImage(filepath.Join(work, "app.tar")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--root", root, "image", "load", "-i", filepath.Join(work, "app.tar"))
	pipeline := filepath.Join(work, "netfile.hcl")
	os.WriteFile(pipeline, []byte(fmt.Sprintf(`plugin "netfile" {
  path   = "netfile"
  sha256 = %q
}
stage "network" {
  use = "plugin.netfile"
  config {
    dir     = %q
    subnet  = "10.68.0.0/24"
    no_sync = true
  }
}
`, sha, leases)), 0o644)
	id := strings.TrimSpace(mustRun(t, "--root", root, "--pipeline", pipeline, "create", "--name", "web", "example.com/app:1"))
	out = mustRun(t, "--root", root, "inspect", "web")
	if !strings.Contains(out, `"IPAddress": "10.68.0.`) {
		t.Errorf("the container did not get its address from netfile:\n%s", out)
	}
	out = mustRun(t, "--root", root, "plugin", "ls")
	if m := lsRE.FindStringSubmatch(out); m == nil || m[1] != "1" {
		t.Errorf("plugin ls with one container:\n%s", out)
	}
	for _, ref := range []string{"netfile", "sha256:" + sha, sha[:12], "netfile@sha256:" + sha} {
		_, errs, code := slipwayIn("--root", root, "plugin", "rm", ref)
		if code != 1 || !strings.Contains(errs, "is in use by 1 container(s)") {
			t.Errorf("plugin rm %s of a plugin in use: exit %d, %s", ref, code, errs)
		}
	}
	if err := store.Verify("netfile", sha); err != nil {
		t.Fatalf("the refused rm removed the binary: %v", err)
	}
	mustRun(t, "--root", root, "--pipeline", pipeline, "rm", id)
	out = mustRun(t, "--root", root, "plugin", "rm", "netfile")
	if out != "Removed netfile sha256:"+sha+"\n" {
		t.Errorf("plugin rm: %q", out)
	}
	if err := store.Verify("netfile", sha); err == nil {
		t.Errorf("the binary is still in the store")
	}
	out = mustRun(t, "--root", root, "plugin", "ls")
	if strings.TrimSpace(out) != "NAME   DIGEST   SIZE   CONTAINERS   PINNED" {
		t.Errorf("plugin ls after rm:\n%q", out)
	}
}

// TestPluginGC collects the store at start-up: it removes an unreferenced, unpinned binary
// and config, and keeps a pinned binary, the binary and config of a container, and those
// of the pipeline the process loaded.
func TestPluginGC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating containers with the default layer stage needs root for overlayfs (CI runs as root)")
	}
	ctx := context.Background()
	root, work, leases := plugintest.TempDir(t), plugintest.TempDir(t), plugintest.TempDir(t)
	t.Cleanup(host.Shutdown)
	built, sha := plugintest.Build(t, netfilePkg)
	plugintest.CopyBinary(t, built, filepath.Join(work, "netfile"))
	if err := writeImage(filepath.Join(work, "app.tar")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--root", root, "image", "load", "-i", filepath.Join(work, "app.tar"))
	pipeline := filepath.Join(work, "netfile.hcl")
	os.WriteFile(pipeline, []byte(fmt.Sprintf("plugin \"netfile\" {\n  path = \"netfile\"\n  sha256 = %q\n}\nstage \"network\" {\n  use = \"plugin.netfile\"\n  config {\n    dir = %q\n  }\n}\n", sha, leases)), 0o644)
	mustRun(t, "--root", root, "--pipeline", pipeline, "create", "--name", "kept", "example.com/app:1")

	store := host.NewStore(root)
	for _, name := range []string{"orphan", "pinned", "loaded"} {
		if _, err := store.Install(ctx, name, built); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Pin("pinned", sha); err != nil {
		t.Fatal(err)
	}
	orphanCfg, _, err := store.SaveConfig([]byte(`{"orphan":true}`))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := store.Configs()

	// This process loads a pipeline that uses "loaded": the builder keeps it.
	a := &app{root: root, log: hclog.NewNullLogger(), stderr: io.Discard}
	if _, err := a.loadPlan(writePipeline(t, work, "loaded", sha, leases)); err != nil {
		t.Fatal(err)
	}
	o := standard.Options(standard.Config{NoSync: true})
	o.Root = root
	e, err := core.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a.pluginGC(ctx, e)

	var names []string
	all, _ := store.List()
	for _, in := range all {
		names = append(names, in.Name)
	}
	if got := strings.Join(names, " "); got != "loaded netfile pinned" {
		t.Errorf("binaries after gc: %s, want loaded netfile pinned (orphan removed)", got)
	}
	after, _ := store.Configs()
	if len(after) != len(before) {
		t.Errorf("configs after gc: %v, want %d (the orphan removed, the loaded pipeline's added)", after, len(before))
	}
	for _, id := range after {
		if id == orphanCfg {
			t.Errorf("the orphan config %s was kept", id)
		}
	}
	rec, err := e.Record(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	_, _, cfg, _ := host.ParseKey(rec.Implementations["network"])
	if _, err := store.Config(cfg); err != nil {
		t.Errorf("the container's config was collected: %v", err)
	}
}

func writePipeline(t *testing.T, dir, name, sha, leases string) string {
	t.Helper()
	p := filepath.Join(dir, name+".hcl")
	src := fmt.Sprintf("plugin %q {\n  path = \"netfile\"\n  sha256 = %q\n}\nstage \"network\" {\n  use = \"plugin.%s\"\n  config {\n    dir = %q\n    network = \"other\"\n  }\n}\n", name, sha, name, leases)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
