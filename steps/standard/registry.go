package standard

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/steps/image/local"
	"github.com/slipwayhq/slipway/steps/layer/snapshot"
	mergemoby "github.com/slipwayhq/slipway/steps/merge/moby"
	mkdirlocal "github.com/slipwayhq/slipway/steps/mkdir/local"
	"github.com/slipwayhq/slipway/steps/network/ipam"
	"github.com/slipwayhq/slipway/steps/register/store"
	"github.com/slipwayhq/slipway/steps/security/selinux"
	verifymoby "github.com/slipwayhq/slipway/steps/verify/moby"
)

// Registry returns the built-in implementations of every stage with their HCL config
// schemas, for hclconfig.Load; its defaults are those of Pipeline(Config{}), and a
// default configuration resolves to the same implementation keys. It has no plugin
// builder: the caller sets Plugins when it has a plugin host.
func Registry() hclconfig.Registry {
	fixed := func(impl func() core.Impl) hclconfig.Builtin {
		return hclconfig.Builtin{Build: func(any) core.Impl { return impl() }}
	}
	return hclconfig.Registry{
		Stages: map[spec.Stage]map[string]hclconfig.Builtin{
			spec.StageVerify:   {verifymoby.Name: fixed(verifymoby.Impl)},
			spec.StageImage:    {local.Name: fixed(local.Impl)},
			spec.StageMerge:    {mergemoby.Name: fixed(mergemoby.Impl)},
			spec.StageSecurity: {selinux.Name: fixed(selinux.Impl)},
			spec.StageNetwork: {ipam.Name: {
				Schema:   IPAMConfig{},
				Validate: func(cfg any) hcl.Diagnostics { return cfg.(*IPAMConfig).validate() },
				Build: func(cfg any) core.Impl {
					c := cfg.(*IPAMConfig)
					impl := ipam.Impl(c.ipam())
					impl.Config = hclconfig.ConfigID(c, defaultIPAM())
					return impl
				},
			}},
			spec.StageLayer: {snapshot.Name: {
				Schema:   SnapshotConfig{Snapshotter: snapshot.DriverAuto},
				Validate: func(cfg any) hcl.Diagnostics { return cfg.(*SnapshotConfig).validate() },
				Build: func(cfg any) core.Impl {
					c := cfg.(*SnapshotConfig)
					var opts []snapshot.Option
					if c.Snapshotter != snapshot.DriverAuto {
						opts = append(opts, snapshot.WithSnapshotter(c.Snapshotter))
					}
					impl := snapshot.Impl(opts...)
					impl.Config = hclconfig.ConfigID(c, SnapshotConfig{Snapshotter: snapshot.DriverAuto})
					return impl
				},
			}},
			spec.StageMkdir: {mkdirlocal.Name: {
				Schema: MkdirConfig{},
				Validate: func(cfg any) hcl.Diagnostics {
					c := cfg.(*MkdirConfig)
					if c.RemappedRootGID < 0 {
						return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid remapped_root_gid",
							Detail: "The remapped root gid cannot be negative.", Subject: c.GIDRange.Ptr()}}
					}
					if c.RemappedRootUID < 0 {
						return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid remapped_root_uid",
							Detail: "The remapped root uid cannot be negative.", Subject: c.UIDRange.Ptr()}}
					}
					return nil
				},
				Build: func(cfg any) core.Impl {
					c := cfg.(*MkdirConfig)
					var opts []mkdirlocal.Option
					if c.RemappedRootGID != 0 {
						opts = append(opts, mkdirlocal.WithRemappedRoot(c.RemappedRootGID))
					}
					if c.RemappedRootUID != 0 {
						opts = append(opts, mkdirlocal.WithRemappedRootUID(c.RemappedRootUID))
					}
					impl := mkdirlocal.Impl(opts...)
					impl.Config = hclconfig.ConfigID(c, MkdirConfig{})
					return impl
				},
			}},
			spec.StageRegister: {store.Name: fixed(store.Impl)},
		},
		Defaults: map[spec.Stage]string{
			spec.StageVerify: verifymoby.Name, spec.StageImage: local.Name, spec.StageMerge: mergemoby.Name,
			spec.StageSecurity: selinux.Name, spec.StageNetwork: ipam.Name, spec.StageLayer: snapshot.Name,
			spec.StageMkdir: mkdirlocal.Name, spec.StageRegister: store.Name,
		},
	}
}

// IPAMConfig is the HCL configuration of the built-in network stage: one network block
// per network; ipam.DefaultConfig's networks when there is none.
type IPAMConfig struct {
	Networks []IPAMNetwork `hcl:"network,block" json:"networks"`
}

// IPAMNetwork is one network block.
type IPAMNetwork struct {
	Name        string `hcl:"name,label" json:"name"`
	Subnet      string `hcl:"subnet" json:"subnet"`
	Gateway     string `hcl:"gateway,optional" json:"gateway,omitempty"`
	Subnet6     string `hcl:"subnet6,optional" json:"subnet6,omitempty"`
	Gateway6    string `hcl:"gateway6,optional" json:"gateway6,omitempty"`
	UserDefined bool   `hcl:"user_defined,optional" json:"user_defined"`

	DefRange      hcl.Range `hcl:",def_range" json:"-"`
	NameRange     hcl.Range `hcl:"name,label_range" json:"-"`
	SubnetRange   hcl.Range `hcl:"subnet,attr_value_range" json:"-"`
	GatewayRange  hcl.Range `hcl:"gateway,attr_value_range" json:"-"`
	Subnet6Range  hcl.Range `hcl:"subnet6,attr_value_range" json:"-"`
	Gateway6Range hcl.Range `hcl:"gateway6,attr_value_range" json:"-"`
}

// ApplyDefaults implements hclconfig.Defaulter: no network block means the default networks.
func (c *IPAMConfig) ApplyDefaults() {
	if len(c.Networks) == 0 {
		c.Networks = defaultIPAM().Networks
	}
}

func defaultIPAM() *IPAMConfig {
	c := &IPAMConfig{}
	for _, n := range ipam.DefaultConfig().Networks {
		nw := IPAMNetwork{Name: n.Name, Subnet: n.Subnet.String(), UserDefined: n.UserDefined}
		if n.Gateway.IsValid() {
			nw.Gateway = n.Gateway.String()
		}
		if n.Subnet6.IsValid() {
			nw.Subnet6 = n.Subnet6.String()
		}
		if n.Gateway6.IsValid() {
			nw.Gateway6 = n.Gateway6.String()
		}
		c.Networks = append(c.Networks, nw)
	}
	return c
}

func (c *IPAMConfig) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(rng hcl.Range, summary, format string, args ...any) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: rng.Ptr()})
	}
	seen := map[string]hcl.Range{}
	for _, n := range c.Networks {
		switch {
		case n.Name == "" || n.Name == "host" || n.Name == "none" || n.Name == "default" || strings.HasPrefix(n.Name, "container:"):
			bad(n.NameRange, "Reserved network name", "The network name %q is reserved.", n.Name)
			continue
		}
		if prev, ok := seen[n.Name]; ok {
			bad(n.NameRange, "Duplicate network", "A network named %q was already defined at %s.", n.Name, prev)
			continue
		}
		seen[n.Name] = n.DefRange
		sub, err := netip.ParsePrefix(n.Subnet)
		switch {
		case err != nil || !sub.Addr().Is4():
			bad(n.SubnetRange, "Invalid subnet", "The subnet of network %q must be an IPv4 CIDR prefix such as \"172.30.0.0/16\".", n.Name)
		case sub.Bits() > 30:
			bad(n.SubnetRange, "Subnet too small", "The subnet %s of network %q leaves no room for addresses; use a /30 or larger.", sub, n.Name)
		case sub != sub.Masked():
			bad(n.SubnetRange, "Invalid subnet", "The subnet %s of network %q has host bits set; did you mean %s?", sub, n.Name, sub.Masked())
		case n.Gateway != "":
			gw, err := netip.ParseAddr(n.Gateway)
			if err != nil || !sub.Contains(gw) {
				bad(n.GatewayRange, "Invalid gateway", "The gateway of network %q must be an address in its subnet %s.", n.Name, sub)
			}
		}
		if n.Subnet6 == "" {
			if n.Gateway6 != "" {
				bad(n.Gateway6Range, "Gateway without subnet", "Network %q sets gateway6 without subnet6.", n.Name)
			}
			continue
		}
		sub6, err := netip.ParsePrefix(n.Subnet6)
		if err != nil || sub6.Addr().Is4() || sub6 != sub6.Masked() {
			bad(n.Subnet6Range, "Invalid subnet6", "The subnet6 of network %q must be an IPv6 CIDR prefix such as \"fd00:1::/64\".", n.Name)
			continue
		}
		if n.Gateway6 != "" {
			if gw, err := netip.ParseAddr(n.Gateway6); err != nil || !sub6.Contains(gw) {
				bad(n.Gateway6Range, "Invalid gateway6", "The gateway6 of network %q must be an address in its subnet6 %s.", n.Name, sub6)
			}
		}
	}
	return diags
}

// ipam converts a validated config.
func (c *IPAMConfig) ipam() ipam.Config {
	var out ipam.Config
	for _, n := range c.Networks {
		nw := ipam.Network{Name: n.Name, UserDefined: n.UserDefined}
		nw.Subnet, _ = netip.ParsePrefix(n.Subnet)
		nw.Gateway, _ = netip.ParseAddr(n.Gateway)
		nw.Subnet6, _ = netip.ParsePrefix(n.Subnet6)
		nw.Gateway6, _ = netip.ParseAddr(n.Gateway6)
		out.Networks = append(out.Networks, nw)
	}
	return out
}

// SnapshotConfig is the HCL configuration of the built-in layer stage.
type SnapshotConfig struct {
	// Snapshotter is auto (overlayfs where the kernel allows it), overlayfs or native.
	Snapshotter      string    `hcl:"snapshotter,optional" json:"snapshotter"`
	SnapshotterRange hcl.Range `hcl:"snapshotter,attr_value_range" json:"-"`
}

func (c *SnapshotConfig) validate() hcl.Diagnostics {
	switch c.Snapshotter {
	case snapshot.DriverAuto, snapshot.DriverOverlay, snapshot.DriverNative:
		return nil
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown snapshotter",
		Detail:  fmt.Sprintf("The snapshotter %q is not one of auto, overlayfs and native.", c.Snapshotter),
		Subject: c.SnapshotterRange.Ptr()}}
}

// MkdirConfig is the HCL configuration of the built-in mkdir stage.
type MkdirConfig struct {
	// RemappedRootGID owns the container roots and the working directories made inside
	// root filesystems (user namespace remapping); 0 by default.
	RemappedRootGID int       `hcl:"remapped_root_gid,optional" json:"remapped_root_gid"`
	GIDRange        hcl.Range `hcl:"remapped_root_gid,attr_value_range" json:"-"`
	// RemappedRootUID owns the working directories made inside root filesystems; 0 by
	// default.
	RemappedRootUID int       `hcl:"remapped_root_uid,optional" json:"remapped_root_uid,omitempty"`
	UIDRange        hcl.Range `hcl:"remapped_root_uid,attr_value_range" json:"-"`
}
