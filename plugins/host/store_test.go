package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	root := plugintest.TempDir(t)
	st := host.NewStore(root)
	src := filepath.Join(plugintest.TempDir(t), "bin")
	os.WriteFile(src, []byte("#!/bin/false\nv1"), 0o644)
	a, err := st.Install(ctx, "netfile", src)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != filepath.Join(root, "plugins", "netfile-"+strings.TrimPrefix(a.Digest, "sha256:")) {
		t.Fatalf("path %s", a.Path)
	}
	if fi, err := os.Stat(a.Path); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed file: %v %v", fi, err)
	}
	if err := host.VerifyFile(a.Path, a.Digest); err != nil {
		t.Fatal(err)
	}
	again, err := st.Install(ctx, "netfile", src)
	if err != nil || again.Digest != a.Digest {
		t.Fatalf("install again: %+v %v", again, err)
	}
	os.WriteFile(src, []byte("#!/bin/false\nv2"), 0o644)
	b, err := st.Install(ctx, "netfile", src)
	if err != nil || b.Digest == a.Digest {
		t.Fatalf("install v2: %+v %v", b, err)
	}
	list, err := st.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := st.Install(ctx, "Bad/Name", src); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := st.Install(ctx, "x", filepath.Join(root, "nope")); !errdefs.IsNotFound(err) {
		t.Fatalf("missing source: %v", err)
	}
	// Remove refuses a referenced digest with Conflict, and finds by prefix.
	refd := func(d string) bool { return d == a.Digest }
	if _, err := st.Remove(a.Digest, refd); !errdefs.IsConflict(err) {
		t.Fatalf("remove of a referenced binary: %v", err)
	}
	if _, err := st.Remove(strings.TrimPrefix(b.Digest, "sha256:")[:12], refd); err != nil {
		t.Fatalf("remove by prefix: %v", err)
	}
	if _, err := st.Remove(b.Digest, refd); !errdefs.IsNotFound(err) {
		t.Fatalf("remove twice: %v", err)
	}
	// GC keeps what is referenced and sweeps the rest, and interrupted installs.
	os.WriteFile(filepath.Join(st.Dir(), ".install-123"), []byte("x"), 0o600)
	removed, err := st.GC(refd)
	if err != nil || len(removed) != 0 {
		t.Fatalf("gc with everything referenced: %v %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), ".install-123")); !os.IsNotExist(err) {
		t.Error("gc left an interrupted install")
	}
	removed, err = st.GC(func(string) bool { return false })
	if err != nil || len(removed) != 1 || removed[0].Digest != a.Digest {
		t.Fatalf("gc: %v %v", removed, err)
	}
	if list, _ := st.List(); len(list) != 0 {
		t.Fatalf("after gc: %v", list)
	}
}

func TestImplName(t *testing.T) {
	sha := strings.Repeat("0a", 32)
	n := host.ImplName("netfile", "sha256:"+sha)
	if n != "plugin:netfile@sha256:"+sha {
		t.Fatal(n)
	}
	name, got, ok := host.ParseImplName(n)
	if !ok || name != "netfile" || got != sha {
		t.Fatalf("parse: %q %q %v", name, got, ok)
	}
	if _, _, ok := host.ParseImplName("ipam"); ok {
		t.Fatal("ipam parsed as a plugin")
	}
}
