package ipam_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/coretest"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/steps/network/ipam"
)

func record(mode string, eps map[string]*network.EndpointSettings) *spec.Record {
	return &spec.Record{
		ID:      core.NewID(),
		Request: &spec.Verified{NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: eps}},
		Merged:  &spec.Merged{Config: &container.Config{}, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}},
	}
}

func static(netName, ip string) map[string]*network.EndpointSettings {
	return map[string]*network.EndpointSettings{netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr(ip)}}}
}

func TestConformance(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	a := coretest.Build[*ipam.Allocator](t, env, ipam.Impl(ipam.Config{}))
	coretest.TestUndoer(t, coretest.Effect{
		Do: func(ctx context.Context, rec *spec.Record) error {
			n, err := a.ConfigureNetwork(ctx, rec)
			rec.Network = n
			return err
		},
		Undo:      a,
		NewRecord: func(t *testing.T) *spec.Record { return record("", nil) },
		Gone: func(t *testing.T, rec *spec.Record) {
			if n := a.Leases()["bridge"]; n != 0 {
				t.Errorf("%d leases left on bridge", n)
			}
		},
	})
}

func TestConfigure(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		rec     *spec.Record
		wantNet string
		wantIP  string
		errText string
		class   errdefs.Class
	}{
		{name: "default is bridge", rec: record("", nil), wantNet: "bridge", wantIP: "172.17.0.2"},
		{name: "default keyword", rec: record("default", nil), wantNet: "bridge", wantIP: "172.17.0.2"},
		{name: "endpoint keyed default", rec: record("default", map[string]*network.EndpointSettings{"default": {Aliases: []string{"x"}}}), wantNet: "bridge", wantIP: "172.17.0.2"},
		{name: "user network", rec: record("slipway", nil), wantNet: "slipway", wantIP: "172.30.0.2"},
		{name: "static on user network", rec: record("slipway", static("slipway", "172.30.9.9")), wantNet: "slipway", wantIP: "172.30.9.9"},
		{name: "static on bridge", rec: record("bridge", static("bridge", "172.17.9.9")), class: errdefs.InvalidArgumentClass,
			errText: "user specified IP address is supported on user defined networks only"},
		{name: "static outside subnet", rec: record("slipway", static("slipway", "10.0.0.1")), class: errdefs.InvalidArgumentClass,
			errText: "no configured subnet or ip-range contain the IP address 10.0.0.1"},
		{name: "static gateway", rec: record("slipway", static("slipway", "172.30.0.1")), class: errdefs.InvalidArgumentClass,
			errText: "address 172.30.0.1 is reserved on network slipway"},
		{name: "unknown network", rec: record("nosuch", nil), class: errdefs.NotFoundClass, errText: "network nosuch not found"},
		{name: "host", rec: record("host", nil), wantNet: "host"},
		{name: "none", rec: record("none", nil), wantNet: "none"},
		{name: "host with ip", rec: record("host", static("host", "1.2.3.4")), class: errdefs.InvalidArgumentClass,
			errText: "user specified IP address is supported on user defined networks only"},
		{name: "container mode, missing", rec: record("container:nosuch", nil), class: errdefs.NotFoundClass, errText: "No such container: nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := coretest.NewEnv(t)
			a := coretest.Build[*ipam.Allocator](t, env, ipam.Impl(ipam.Config{}))
			got, err := a.ConfigureNetwork(ctx, tc.rec)
			if tc.errText != "" {
				if err == nil || err.Error() != tc.errText || errdefs.ClassOf(err) != tc.class {
					t.Fatalf("error = %v (%v), want %q (%v)", err, errdefs.ClassOf(err), tc.errText, tc.class)
				}
				if n := a.Leases(); n["bridge"]+n["slipway"] != 0 {
					t.Errorf("a failed configure left leases: %v", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ep, ok := got.Networks[tc.wantNet]
			if !ok || len(got.Networks) != 1 {
				t.Fatalf("networks = %v, want only %s", got.Networks, tc.wantNet)
			}
			if tc.wantIP != "" && ep.IPAddress.String() != tc.wantIP {
				t.Errorf("address = %s, want %s", ep.IPAddress, tc.wantIP)
			}
			if tc.wantIP != "" && (ep.IPPrefixLen != 16 || !ep.Gateway.IsValid() || len(ep.NetworkID) != 64) {
				t.Errorf("endpoint = %+v", ep)
			}
		})
	}
}

func TestDuplicateStaticIsConflict(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	a := coretest.Build[*ipam.Allocator](t, env, ipam.Impl(ipam.Config{}))
	first := record("slipway", static("slipway", "172.30.0.10"))
	if _, err := a.ConfigureNetwork(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	_, err := a.ConfigureNetwork(t.Context(), record("slipway", static("slipway", "172.30.0.10")))
	if !errdefs.IsConflict(err) || !strings.HasPrefix(err.Error(), "Address already in use") {
		t.Fatalf("duplicate: %v", err)
	}
	a.Undo(t.Context(), &spec.Record{ID: first.ID})
	if _, err := a.ConfigureNetwork(t.Context(), record("slipway", static("slipway", "172.30.0.10"))); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestExhaustion(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	cfg := ipam.Config{Networks: []ipam.Network{{Name: "tiny", Subnet: netip.MustParsePrefix("10.9.0.0/29"), Gateway: netip.MustParseAddr("10.9.0.1")}}}
	a := coretest.Build[*ipam.Allocator](t, env, ipam.Impl(cfg))
	seen := map[string]bool{}
	for i := 0; i < 5; i++ { // .2 to .6: .0 is the network, .1 the gateway, .7 broadcast
		n, err := a.ConfigureNetwork(t.Context(), record("tiny", nil))
		if err != nil {
			t.Fatalf("lease %d: %v", i, err)
		}
		ip := n.Networks["tiny"].IPAddress.String()
		if seen[ip] || ip == "10.9.0.1" || ip == "10.9.0.7" || ip == "10.9.0.0" {
			t.Fatalf("bad or repeated address %s", ip)
		}
		seen[ip] = true
	}
	_, err := a.ConfigureNetwork(t.Context(), record("tiny", nil))
	if !errdefs.IsUnavailable(err) || err.Error() != "no available IPv4 addresses on network tiny" {
		t.Fatalf("exhausted pool: %v", err)
	}
}

// TestLeasesRebuiltFromRecords checks that leases of registered containers survive a new
// instance of the stage (a restart), so addresses are never given out twice.
func TestLeasesRebuiltFromRecords(t *testing.T) {
	ctx := context.Background()
	env, e := coretest.NewEnv(t)
	resp, err := e.Create(ctx, spec.CreateRequest{Name: "holder", Config: &container.Config{Image: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp
	// The fake pipeline records no network; commit a record with an address through the store.
	rec, _ := e.Record(ctx, "holder")
	rec = rec.Clone()
	rec.Network = &spec.Network{Networks: map[string]*network.EndpointSettings{"slipway": {IPAddress: netip.MustParseAddr("172.30.0.2")}}}
	if err := env.Store.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}
	a := coretest.Build[*ipam.Allocator](t, env, ipam.Impl(ipam.Config{}))
	n, err := a.ConfigureNetwork(ctx, record("slipway", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Networks["slipway"].IPAddress.String(); got == "172.30.0.2" {
		t.Fatal("the address of a registered container was given out again")
	}
	if _, err := a.ConfigureNetwork(ctx, record("slipway", static("slipway", "172.30.0.2"))); !errdefs.IsConflict(err) {
		t.Fatalf("static address of a registered container: %v, want Conflict", err)
	}
}

// TestInstancesShareLeases builds two instances in one engine, as a reload does, and checks
// that they never give out the same address.
func TestInstancesShareLeases(t *testing.T) {
	env, _ := coretest.NewEnv(t)
	small := ipam.Config{Networks: []ipam.Network{{Name: "slipway", Subnet: netip.MustParsePrefix("172.30.0.0/29"), Gateway: netip.MustParseAddr("172.30.0.1"), UserDefined: true}}}
	oldImpl := ipam.Impl(ipam.Config{})
	newImpl := ipam.Impl(small)
	newImpl.Config = "small"
	a := coretest.Build[*ipam.Allocator](t, env, oldImpl)
	b := coretest.Build[*ipam.Allocator](t, env, newImpl)
	seen := map[netip.Addr]bool{}
	for i := 0; i < 2; i++ { // four of the five addresses of the /29
		for _, n := range []*ipam.Allocator{a, b} {
			got, err := n.ConfigureNetwork(t.Context(), record("slipway", nil))
			if err != nil {
				t.Fatal(err)
			}
			ip := got.Networks["slipway"].IPAddress
			if seen[ip] {
				t.Fatalf("address %s given out twice by two instances", ip)
			}
			seen[ip] = true
		}
	}
	if _, err := b.ConfigureNetwork(t.Context(), record("slipway", static("slipway", "172.30.0.2"))); !errdefs.IsConflict(err) {
		t.Fatalf("static address the other instance gave out: %v, want Conflict", err)
	}
}

// linked registers a container named name whose network mode is mode, through the engine's
// store, for link lookups.
func linked(t *testing.T, env core.Env, e *core.Engine, name, mode string) *spec.Record {
	t.Helper()
	ctx := t.Context()
	if _, err := e.Create(ctx, spec.CreateRequest{Name: name, Config: &container.Config{Image: "x"}}); err != nil {
		t.Fatal(err)
	}
	rec, err := e.Record(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	rec = rec.Clone()
	rec.Merged = &spec.Merged{Config: &container.Config{}, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}}
	if err := env.Store.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestLinks follows moby's registerLinks: resolution at create, the container: chain, the
// host-mode conflict, user-defined networks skipped, and the deprecation warning.
func TestLinks(t *testing.T) {
	const deprecated = "Links on the default bridge network are deprecated and will be removed in a future release. Use a custom network instead."
	env, e := coretest.NewEnv(t)
	db := linked(t, env, e, "db", "bridge")
	linked(t, env, e, "side", "container:"+db.ID) // joins db's network namespace
	linked(t, env, e, "hostnet", "host")
	linked(t, env, e, "viahost", "container:hostnet")
	for _, tc := range []struct {
		name     string
		mode     string
		links    []string
		want     []string
		wantWarn bool
		errText  string
		errClass errdefs.Class
	}{
		{name: "alias", mode: "", links: []string{"db:database"}, want: []string{"/db:/web/database"}, wantWarn: true},
		{name: "no alias", mode: "default", links: []string{"db"}, want: []string{"/db:/web/db"}, wantWarn: true},
		{name: "bridge", mode: "bridge", links: []string{"/db:/other/database"}, want: []string{"/db:/web/database"}, wantWarn: true},
		{name: "by ID prefix", mode: "bridge", links: []string{db.ID[:12] + ":d"}, want: []string{"/db:/web/d"}, wantWarn: true},
		{name: "container chain", mode: "bridge", links: []string{"side:s"}, want: []string{"/db:/web/s"}, wantWarn: true},
		{name: "alias twice keeps the first", mode: "bridge", links: []string{"db:x", "side:x", "db:y"}, want: []string{"/db:/web/x", "/db:/web/y"}, wantWarn: true},
		{name: "none mode still links", mode: "none", links: []string{"db:d"}, want: []string{"/db:/web/d"}},
		{name: "user-defined skips", mode: "slipway", links: []string{"nosuch:x"}},
		{name: "missing", mode: "bridge", links: []string{"nosuch:x"}, errClass: errdefs.InvalidArgumentClass,
			errText: "could not get container for nosuch: No such container: nosuch"},
		{name: "missing after a good one", mode: "", links: []string{"db", "nosuch"}, errClass: errdefs.InvalidArgumentClass,
			errText: "could not get container for nosuch: No such container: nosuch"},
		{name: "target on host network", mode: "bridge", links: []string{"hostnet:h"}, errClass: errdefs.InvalidArgumentClass,
			errText: "conflicting options: host type networking can't be used with links. This would result in undefined behavior"},
		{name: "chain to host network", mode: "bridge", links: []string{"viahost:h"}, errClass: errdefs.InvalidArgumentClass,
			errText: "conflicting options: host type networking can't be used with links. This would result in undefined behavior"},
		{name: "bad format", mode: "bridge", links: []string{"a:b:c"}, errClass: errdefs.InvalidArgumentClass, errText: "bad format for links: a:b:c"},
		{name: "empty", mode: "bridge", links: []string{""}, errClass: errdefs.InvalidArgumentClass, errText: "empty string specified for links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := coretest.Build[*ipam.Allocator](t, env, ipam.Impl(ipam.Config{}))
			rec := record(tc.mode, nil)
			rec.Name = "web"
			rec.Merged.HostConfig.Links = tc.links
			before := a.Leases()
			got, err := a.ConfigureNetwork(t.Context(), rec)
			if tc.errText != "" {
				if err == nil || err.Error() != tc.errText || errdefs.ClassOf(err) != tc.errClass {
					t.Fatalf("error = %v (%v), want %q (%v)", err, errdefs.ClassOf(err), tc.errText, tc.errClass)
				}
				// Links are resolved before any address is leased.
				if n := a.Leases(); n["bridge"] != before["bridge"] || n["slipway"] != before["slipway"] {
					t.Errorf("a refused link left leases: %v, before %v", n, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.Links, ",") != strings.Join(tc.want, ",") {
				t.Errorf("links = %q, want %q", got.Links, tc.want)
			}
			warned := len(got.Warnings) == 1 && got.Warnings[0] == deprecated
			if warned != tc.wantWarn || (!tc.wantWarn && len(got.Warnings) != 0) {
				t.Errorf("warnings = %q, want the deprecation warning: %v", got.Warnings, tc.wantWarn)
			}
		})
	}
}
