// Package ipam is the built-in network stage: it sets the network mode, checks the endpoint
// settings of the request and leases addresses from the configured networks.
//
// Networks are configured, not discovered: by default "bridge" (172.17.0.0/16, gateway
// 172.17.0.1, addresses given out in order, static addresses refused as moby refuses them on
// the default bridge) and the user-defined "slipway" (172.30.0.0/16), where --ip and --ip6
// are honoured. "host", "none" and "container:<name|id>" modes take no address.
//
// Legacy links (--link name:alias) are resolved here, as moby's registerLinks does at create,
// before any address is leased; see registerLinks.
//
// Leases are derived state: a lease lives in memory while the run that took it is in flight,
// and becomes durable as part of the container's record, from which the lease table is
// rebuilt when the stage is built. So a crash can never leave an address leased to nobody, and
// a create pays no extra disk write for its address. Undo releases every address of the
// container; it needs only the ID and is idempotent.
package ipam

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the implementation name recorded in containers.
const Name = "ipam"

// Network is one network the stage can lease addresses on.
type Network struct {
	Name    string       `json:"name"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// Subnet6 and Gateway6 enable IPv6 addresses (--ip6).
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	// UserDefined networks honour static addresses; the default bridge refuses them, as in moby.
	UserDefined bool `json:"user_defined"`
}

// Config lists the networks; DefaultConfig when empty.
type Config struct {
	Networks []Network `json:"networks"`
}

// DefaultConfig is the bridge network and one user-defined network.
func DefaultConfig() Config {
	return Config{Networks: []Network{
		{Name: "bridge", Subnet: netip.MustParsePrefix("172.17.0.0/16"), Gateway: netip.MustParseAddr("172.17.0.1")},
		{Name: "slipway", Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: netip.MustParseAddr("172.30.0.1"),
			Subnet6: netip.MustParsePrefix("fd00:5117:3a7::/64"), Gateway6: netip.MustParseAddr("fd00:5117:3a7::1"), UserDefined: true},
	}}
}

// Impl returns the built-in network stage with cfg (DefaultConfig when it lists no network).
func Impl(cfg Config) core.Impl {
	return core.Impl{Stage: spec.StageNetwork, Name: Name, New: func(ctx context.Context, env core.Env) (any, error) {
		var t *leaseTable
		if env.Shared != nil {
			v, err := env.Shared.Get("ipam/leases", func() (any, error) { return loadLeases(ctx, env.Host, env.Logger) })
			if err != nil {
				return nil, err
			}
			t = v.(*leaseTable)
		}
		return newAllocator(ctx, cfg, env.Host, env.Logger, t)
	}}
}

type pool struct {
	Network
	id   string
	next netip.Addr
}

// leaseTable is who holds which address, by network name. One table serves every instance
// of the stage in an engine (core.Env.Shared), so that the instances of an old and a new
// pipeline snapshot, both serving runs after a reload, never give out one address twice.
type leaseTable struct {
	mu   sync.Mutex
	used map[string]map[netip.Addr]string // network -> address -> container ID
	byID map[string][]lease               // container ID -> its addresses
}

type lease struct {
	network string
	addr    netip.Addr
}

func (t *leaseTable) owner(network string, addr netip.Addr) (string, bool) {
	id, ok := t.used[network][addr]
	return id, ok
}

func (t *leaseTable) take(network string, addr netip.Addr, id string) {
	if t.used[network] == nil {
		t.used[network] = map[netip.Addr]string{}
	}
	t.used[network][addr] = id
	t.byID[id] = append(t.byID[id], lease{network, addr})
}

// loadLeases rebuilds the table from the addresses recorded in the registered containers.
func loadLeases(ctx context.Context, host core.Host, log hclog.Logger) (*leaseTable, error) {
	t := &leaseTable{used: map[string]map[netip.Addr]string{}, byID: map[string][]lease{}}
	if host == nil {
		return t, nil
	}
	recs, err := host.Containers(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Network == nil {
			continue
		}
		for name, ep := range r.Network.Networks {
			if ep == nil {
				continue
			}
			for _, ad := range []netip.Addr{ep.IPAddress, ep.GlobalIPv6Address} {
				if !ad.IsValid() {
					continue
				}
				if owner, taken := t.owner(name, ad); taken && owner != r.ID {
					if log != nil {
						log.Warn("address recorded for two containers", "network", name, "address", ad, "containers", owner+","+r.ID)
					}
					continue
				}
				t.take(name, ad, r.ID)
			}
		}
	}
	return t, nil
}

// Allocator is the built-in network stage.
type Allocator struct {
	host  core.Host
	log   hclog.Logger
	pools map[string]*pool
	t     *leaseTable
}

var _ core.Networker = (*Allocator)(nil)

// New builds a stage with a lease table of its own, rebuilt from the registered containers.
// Within an engine, Impl shares one table between all instances instead.
func New(ctx context.Context, cfg Config, host core.Host, log hclog.Logger) (*Allocator, error) {
	return newAllocator(ctx, cfg, host, log, nil)
}

func newAllocator(ctx context.Context, cfg Config, host core.Host, log hclog.Logger, t *leaseTable) (*Allocator, error) {
	if len(cfg.Networks) == 0 {
		cfg = DefaultConfig()
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if t == nil {
		var err error
		if t, err = loadLeases(ctx, host, log); err != nil {
			return nil, err
		}
	}
	a := &Allocator{host: host, log: log, pools: map[string]*pool{}, t: t}
	for _, n := range cfg.Networks {
		if err := checkNetwork(n); err != nil {
			return nil, err
		}
		if _, dup := a.pools[n.Name]; dup {
			return nil, errdefs.InvalidArgument(fmt.Errorf("network %q is configured twice", n.Name))
		}
		sum := sha256.Sum256([]byte("slipway-network:" + n.Name))
		a.pools[n.Name] = &pool{Network: n, id: hex.EncodeToString(sum[:]), next: n.Subnet.Masked().Addr().Next()}
	}
	return a, nil
}

func checkNetwork(n Network) error {
	switch {
	case n.Name == "" || n.Name == "host" || n.Name == "none" || n.Name == "default" || strings.HasPrefix(n.Name, "container:"):
		return errdefs.InvalidArgument(fmt.Errorf("network name %q is reserved", n.Name))
	case !n.Subnet.IsValid() || !n.Subnet.Addr().Is4():
		return errdefs.InvalidArgument(fmt.Errorf("network %s: an IPv4 subnet is required", n.Name))
	case n.Subnet.Bits() > 30:
		return errdefs.InvalidArgument(fmt.Errorf("network %s: subnet %s is too small", n.Name, n.Subnet))
	case n.Gateway.IsValid() && !n.Subnet.Contains(n.Gateway):
		return errdefs.InvalidArgument(fmt.Errorf("network %s: gateway %s is outside subnet %s", n.Name, n.Gateway, n.Subnet))
	case n.Subnet6.IsValid() && (n.Subnet6.Addr().Is4() || (n.Gateway6.IsValid() && !n.Subnet6.Contains(n.Gateway6))):
		return errdefs.InvalidArgument(fmt.Errorf("network %s: bad IPv6 subnet %s or gateway %s", n.Name, n.Subnet6, n.Gateway6))
	}
	return nil
}

// Networks returns the configured networks, sorted by name.
func (a *Allocator) Networks() []Network {
	out := make([]Network, 0, len(a.pools))
	for _, p := range a.pools {
		out = append(out, p.Network)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ConfigureNetwork records the network settings of rec and leases its addresses.
func (a *Allocator) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	if rec.Merged == nil || rec.Merged.HostConfig == nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("network stage: no host config for %s", rec.ID))
	}
	mode := string(rec.Merged.HostConfig.NetworkMode)
	if mode == "" || mode == "default" {
		mode = "bridge"
	}
	var eps map[string]*network.EndpointSettings
	if rec.Request != nil && rec.Request.NetworkingConfig != nil {
		eps = rec.Request.NetworkingConfig.EndpointsConfig
	}
	out := &spec.Network{NetworkMode: mode, Networks: map[string]*network.EndpointSettings{}}
	if err := a.registerLinks(ctx, rec, out); err != nil {
		return nil, err
	}
	if rec.Merged.Config != nil && rec.Merged.Config.NetworkDisabled {
		return out, nil
	}
	switch {
	case strings.HasPrefix(mode, "container:"):
		ref := strings.TrimPrefix(mode, "container:")
		if ref == "" {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid network mode: %s", mode))
		}
		if a.host != nil {
			if _, err := a.host.Container(ctx, ref); err != nil {
				return nil, err
			}
		}
		if len(eps) > 0 {
			return nil, errdefs.InvalidArgument(fmt.Errorf("conflicting options: container type network can't be used with endpoint settings"))
		}
		return out, nil
	case mode == "host" || mode == "none":
		for name, ep := range eps {
			if name != mode {
				return nil, errdefs.InvalidArgument(fmt.Errorf("container cannot be disconnected from host network or connected to host network"))
			}
			if ep != nil && ep.IPAMConfig != nil && (ep.IPAMConfig.IPv4Address.IsValid() || ep.IPAMConfig.IPv6Address.IsValid()) {
				return nil, errdefs.InvalidArgument(fmt.Errorf("user specified IP address is supported on user defined networks only"))
			}
		}
		out.Networks[mode] = &network.EndpointSettings{}
		return out, nil
	}
	if len(eps) == 0 {
		eps = map[string]*network.EndpointSettings{mode: nil}
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for name, ep := range eps {
		if name == "default" {
			name = "bridge"
		}
		p := a.pools[name]
		if p == nil {
			return nil, errdefs.NotFound(fmt.Errorf("network %s not found", name))
		}
		settings, err := a.lease(rec.ID, p, ep)
		if err != nil {
			return nil, err
		}
		out.Networks[name] = settings
	}
	return out, nil
}

// linksDeprecated is the warning moby gives (since Engine 29) for links on the default bridge.
const linksDeprecated = "Links on the default bridge network are deprecated and will be removed in a future release. Use a custom network instead."

// maxLinkChain bounds the walk along container: network modes; a chain cannot loop (each
// target existed before the container that joins it), so the bound only guards bad records.
const maxLinkChain = 64

// registerLinks resolves HostConfig.Links as moby's registerLinks does at create: nothing
// on a user-defined network; otherwise each "name[:alias]" must name an existing container
// (InvalidArgument "could not get container for NAME: No such container: NAME", moby#39823),
// whose container: network mode is followed to the container that owns the network
// namespace, which must not use the host's. The links are recorded in inspect's form,
// "/target:/container/alias"; an alias given twice keeps its first target, as moby keeps the
// first reservation of the link name. Links on the default bridge add moby's deprecation
// warning.
func (a *Allocator) registerLinks(ctx context.Context, rec *spec.Record, out *spec.Network) error {
	hc := rec.Merged.HostConfig
	if len(hc.Links) == 0 {
		return nil
	}
	// The API turns an empty mode into the default network before moby sees it.
	mode := hc.NetworkMode
	if mode == "" {
		mode = network.NetworkDefault
	}
	if mode.IsDefault() || mode.IsBridge() {
		out.Warnings = append(out.Warnings, linksDeprecated)
	}
	if mode.IsUserDefined() {
		return nil
	}
	if a.host == nil {
		return errdefs.FailedPrecondition(fmt.Errorf("network stage: links need the engine's container lookup"))
	}
	seen := map[string]string{} // link name -> target ID
	for _, l := range hc.Links {
		name, alias, err := parseLink(l)
		if err != nil {
			return errdefs.InvalidArgument(err)
		}
		target, err := a.linkTarget(ctx, name)
		if err != nil {
			return err
		}
		for i := 0; target.Merged != nil && target.Merged.HostConfig != nil && target.Merged.HostConfig.NetworkMode.IsContainer(); i++ {
			if i == maxLinkChain {
				return errdefs.InvalidArgument(fmt.Errorf("could not get container for %s: container network chain longer than %d", name, maxLinkChain))
			}
			if target, err = a.linkTarget(ctx, target.Merged.HostConfig.NetworkMode.ConnectedContainer()); err != nil {
				return err
			}
		}
		if target.Merged != nil && target.Merged.HostConfig != nil && target.Merged.HostConfig.NetworkMode.IsHost() {
			return errdefs.InvalidArgument(fmt.Errorf("conflicting options: host type networking can't be used with links. This would result in undefined behavior"))
		}
		full := path.Join("/"+rec.Name, alias)
		if id, dup := seen[full]; dup {
			if id != target.ID {
				a.log.Warn("link name already registered for another container, ignoring", "container", rec.ID, "link", full, "target", target.ID)
			}
			continue
		}
		seen[full] = target.ID
		out.Links = append(out.Links, "/"+target.Name+":"+full)
	}
	return nil
}

// linkTarget looks a link target up; a missing one is InvalidArgument, not NotFound, so
// that clients do not report a missing image (moby#39823).
func (a *Allocator) linkTarget(ctx context.Context, ref string) (*spec.Record, error) {
	r, err := a.host.Container(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.InvalidArgument(fmt.Errorf("could not get container for %s: %w", ref, err))
		}
		return nil, fmt.Errorf("could not get container for %s: %w", ref, err)
	}
	return r, nil
}

// parseLink splits "name[:alias]" as moby's opts.ParseLink does, including the
// "/name:/container/alias" form inspect shows.
func parseLink(val string) (name, alias string, err error) {
	if val == "" {
		return "", "", errors.New("empty string specified for links")
	}
	parts := strings.Split(val, ":")
	switch {
	case len(parts) > 2:
		return "", "", fmt.Errorf("bad format for links: %s", val)
	case len(parts) == 1:
		return val, val, nil
	case strings.HasPrefix(parts[0], "/"):
		_, alias := path.Split(parts[1])
		return parts[0][1:], alias, nil
	}
	return parts[0], parts[1], nil
}

// lease takes the addresses of one endpoint; the caller holds a.t.mu.
func (a *Allocator) lease(id string, p *pool, ep *network.EndpointSettings) (*network.EndpointSettings, error) {
	s := &network.EndpointSettings{}
	if ep != nil {
		c := *ep
		c.Aliases = append([]string(nil), ep.Aliases...)
		c.Links = append([]string(nil), ep.Links...)
		s = &c
	}
	var want4, want6 netip.Addr
	if s.IPAMConfig != nil {
		want4, want6 = s.IPAMConfig.IPv4Address, s.IPAMConfig.IPv6Address
	}
	// moby refuses static addresses on the predefined networks with this text.
	if (want4.IsValid() || want6.IsValid()) && !p.UserDefined {
		return nil, errdefs.InvalidArgument(fmt.Errorf("user specified IP address is supported on user defined networks only"))
	}
	s.NetworkID = p.id
	s.IPPrefixLen = p.Subnet.Bits()
	s.Gateway = p.Gateway
	var addr netip.Addr
	if want4.IsValid() {
		if !want4.Is4() {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid IPv4 address: %s", want4))
		}
		if err := a.take(id, p, p.Subnet, p.Gateway, want4); err != nil {
			return nil, err
		}
		addr = want4
	} else {
		var err error
		if addr, err = a.next(id, p); err != nil {
			return nil, err
		}
	}
	s.IPAddress = addr
	if want6.IsValid() {
		if !p.Subnet6.IsValid() {
			return nil, errdefs.InvalidArgument(fmt.Errorf("no configured subnet contains the IPv6 address %s", want6))
		}
		if err := a.take(id, p, p.Subnet6, p.Gateway6, want6); err != nil {
			return nil, err
		}
		s.GlobalIPv6Address, s.GlobalIPv6PrefixLen, s.IPv6Gateway = want6, p.Subnet6.Bits(), p.Gateway6
	}
	return s, nil
}

func (a *Allocator) take(id string, p *pool, subnet netip.Prefix, gw, addr netip.Addr) error {
	if !subnet.Contains(addr) {
		return errdefs.InvalidArgument(fmt.Errorf("no configured subnet or ip-range contain the IP address %s", addr))
	}
	if addr == subnet.Masked().Addr() || addr == gw || (addr.Is4() && addr == lastAddr(subnet)) {
		return errdefs.InvalidArgument(fmt.Errorf("address %s is reserved on network %s", addr, p.Name))
	}
	if owner, taken := a.t.owner(p.Name, addr); taken {
		if owner == id {
			return nil
		}
		return errdefs.Conflict(fmt.Errorf("Address already in use: %s on network %s is leased to container %s", addr, p.Name, owner))
	}
	a.t.take(p.Name, addr, id)
	return nil
}

// next leases the next free IPv4 address after the last one given out, wrapping around.
func (a *Allocator) next(id string, p *pool) (netip.Addr, error) {
	first := p.Subnet.Masked().Addr().Next()
	last := lastAddr(p.Subnet)
	size := 1 << (32 - p.Subnet.Bits())
	ad := p.next
	for i := 0; i < size; i++ {
		if !p.Subnet.Contains(ad) || ad == last {
			ad = first
		}
		if ad != p.Gateway {
			if _, taken := a.t.owner(p.Name, ad); !taken {
				a.t.take(p.Name, ad, id)
				p.next = ad.Next()
				return ad, nil
			}
		}
		ad = ad.Next()
	}
	return netip.Addr{}, errdefs.Unavailable(fmt.Errorf("no available IPv4 addresses on network %s", p.Name))
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Undo releases every address leased to rec.ID.
func (a *Allocator) Undo(ctx context.Context, rec *spec.Record) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for _, l := range a.t.byID[rec.ID] {
		if a.t.used[l.network][l.addr] == rec.ID {
			delete(a.t.used[l.network], l.addr)
		}
	}
	delete(a.t.byID, rec.ID)
	return nil
}

// Leases returns the number of addresses leased on each network.
func (a *Allocator) Leases() map[string]int {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	out := map[string]int{}
	for name := range a.pools {
		out[name] = len(a.t.used[name])
	}
	return out
}
