package plugintest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/netfile"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/plugins/sdk"
	mergemoby "github.com/slipwayhq/slipway/steps/merge/moby"
	"github.com/slipwayhq/slipway/steps/network/ipam"
	verifymoby "github.com/slipwayhq/slipway/steps/verify/moby"
)

func TestMain(m *testing.M) {
	hclog.SetDefault(hclog.NewNullLogger()) // go-plugin's in-memory connections log there
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

func netfileConfig(dir string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"dir":%q,"subnet":"10.99.0.0/24","no_sync":true}`, dir))
}

func leaseGone(dir string) func(t *testing.T, rec *spec.Record) {
	return func(t *testing.T, rec *spec.Record) {
		l, err := netfile.ReadLeases(dir)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := l[rec.ID]; ok {
			t.Errorf("lease %s of %s left", a, rec.ID)
		}
	}
}

// TestNetfileInMemory runs the undo conformance suite on netfile served in memory through
// real go-plugin gRPC.
func TestNetfileInMemory(t *testing.T) {
	dir := plugintest.TempDir(t)
	n := netfile.New()
	nw := plugintest.Stage[core.Networker](t, sdk.Plugin{Name: "netfile", Version: "0.1.0", Network: n, Config: &n.Config}, spec.StageNetwork, netfileConfig(dir))
	coretest.TestUndoer(t, plugintest.NetworkEffect(nw, plugintest.NetworkRecord, leaseGone(dir)))
	if l, _ := netfile.ReadLeases(dir); len(l) != 0 {
		t.Fatalf("leases left after the suite: %v", l)
	}
}

// TestNetfileBinary runs the same suite on the netfile binary, built by the test, installed
// in a plugin store and launched by plugins/host.
func TestNetfileBinary(t *testing.T) {
	root := plugintest.TempDir(t)
	dir := plugintest.TempDir(t)
	ref := plugintest.Install(t, root, "github.com/slipwayhq/slipway/examples/plugins/netfile/cmd/netfile", "netfile", netfileConfig(dir))
	env, _ := coretest.NewEnvWith(t, core.Options{Root: plugintest.TempDir(t)})
	nw := coretest.Build[core.Networker](t, env, host.Impl(spec.StageNetwork, ref))
	coretest.TestUndoer(t, plugintest.NetworkEffect(nw, plugintest.NetworkRecord, leaseGone(dir)))
	if l, _ := netfile.ReadLeases(dir); len(l) != 0 {
		t.Fatalf("leases left after the suite: %v", l)
	}
}

// TestBuiltinsThroughTheWire serves built-in stages through the SDK in memory and runs
// their conformance suites: the JSON carriage of requests and records must be faithful.
func TestBuiltinsThroughTheWire(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	valid := func() *spec.CreateRequest {
		return &spec.CreateRequest{Name: "ok", Config: &container.Config{Image: "x", Env: []string{"A=1"}}, HostConfig: &container.HostConfig{}}
	}
	t.Run("verify", func(t *testing.T) {
		v := coretest.Build[core.Verifier](t, env, verifymoby.Impl())
		coretest.TestVerifier(t, plugintest.Stage[core.Verifier](t, sdk.Plugin{Name: "verify", Verify: v}, spec.StageVerify, nil), valid)
	})
	t.Run("merge", func(t *testing.T) {
		m := coretest.Build[core.Merger](t, env, mergemoby.Impl())
		coretest.TestMerger(t, plugintest.Stage[core.Merger](t, sdk.Plugin{Name: "merge", Merge: m}, spec.StageMerge, nil), func() *spec.Record {
			rec := plugintest.NetworkRecord(t)
			rec.Merged = nil
			rec.Request.Config.Cmd = []string{"/bin/app"}
			return rec
		})
	})
	t.Run("ipam", func(t *testing.T) {
		a, err := ipam.New(context.Background(), ipam.Config{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		nw := plugintest.Stage[core.Networker](t, sdk.Plugin{Name: "ipam", Network: a}, spec.StageNetwork, nil)
		coretest.TestUndoer(t, plugintest.NetworkEffect(nw, plugintest.NetworkRecord, func(t *testing.T, rec *spec.Record) {
			if l := a.Leases()["bridge"]; l != 0 {
				t.Errorf("%d leases left", l)
			}
		}))
	})
}
