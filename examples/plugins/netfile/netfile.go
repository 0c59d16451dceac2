// Package netfile is an example network stage plugin for Slipway: it leases IPv4 addresses
// on one network from a subnet of its config and keeps its leases in a JSON file under a
// directory of its config, so that they survive restarts of the plugin and of the engine.
//
// Leases are keyed by container ID. ConfigureNetwork leases an address (the one asked for
// with --ip when it is free, else the next free one) and writes the file before it
// answers; Undo releases every address of the container ID and is idempotent, so it works
// after a crash of the plugin or of the engine with nothing but the ID. Every change is
// written to a new file that replaces the old one (fsynced unless no_sync is set), under
// an flock, so two processes sharing the directory cannot lose each other's leases.
//
// The binary is cmd/netfile; see README.md for how an operator builds, installs and selects
// it.
package netfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Config is the plugin's config.
type Config struct {
	Dir     string       `json:"dir" hcl:"dir" doc:"directory that holds leases.json; created when missing"`
	Network string       `json:"network,omitempty" hcl:"network,optional" doc:"name of the network the plugin serves"`
	Subnet  netip.Prefix `json:"subnet,omitzero" hcl:"subnet,optional" doc:"IPv4 subnet to lease from"`
	Gateway netip.Addr   `json:"gateway,omitzero" hcl:"gateway,optional" doc:"gateway address; the subnet's first address when unset"`
	NoSync  bool         `json:"no_sync,omitempty" hcl:"no_sync,optional" doc:"do not fsync the lease file (tests)"`
}

// DefaultConfig is the config before the host's is applied: network "bridge" on 10.88.0.0/16.
func DefaultConfig() Config {
	return Config{Network: "bridge", Subnet: netip.MustParsePrefix("10.88.0.0/16")}
}

// Net is the network stage.
type Net struct {
	Config Config

	log hclog.Logger
	mu  sync.Mutex
}

var _ core.Networker = (*Net)(nil)

// New returns a stage with the default config, ready for Setup.
func New() *Net { return &Net{Config: DefaultConfig()} }

// Setup checks the config and makes the lease directory.
func (n *Net) Setup(ctx context.Context, log hclog.Logger) error {
	n.log = log
	c := &n.Config
	switch {
	case c.Dir == "":
		return errdefs.InvalidArgument(errors.New("netfile: dir is required"))
	case !filepath.IsAbs(c.Dir):
		return errdefs.InvalidArgument(fmt.Errorf("netfile: dir %q is not absolute", c.Dir))
	case !c.Subnet.IsValid() || !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 30:
		return errdefs.InvalidArgument(fmt.Errorf("netfile: subnet %s: an IPv4 subnet of at most /30 is required", c.Subnet))
	case c.Network == "" || c.Network == "host" || c.Network == "none" || strings.HasPrefix(c.Network, "container:"):
		return errdefs.InvalidArgument(fmt.Errorf("netfile: network name %q is reserved", c.Network))
	}
	c.Subnet = c.Subnet.Masked()
	if !c.Gateway.IsValid() {
		c.Gateway = c.Subnet.Addr().Next()
	}
	if !c.Subnet.Contains(c.Gateway) {
		return errdefs.InvalidArgument(fmt.Errorf("netfile: gateway %s is outside subnet %s", c.Gateway, c.Subnet))
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	}
	log.Info("netfile ready", "dir", c.Dir, "network", c.Network, "subnet", c.Subnet.String())
	return nil
}

// state is the content of leases.json.
type state struct {
	Subnet string `json:"subnet"`
	// Leases maps a container ID to its address.
	Leases map[string]netip.Addr `json:"leases"`
	// Next is where the search for a free address starts.
	Next netip.Addr `json:"next,omitzero"`
}

func (n *Net) path() string { return filepath.Join(n.Config.Dir, "leases.json") }

// update runs f on the lease file's content under the process mutex and an flock, and
// writes the result back when f reports a change.
func (n *Net) update(f func(s *state) (changed bool, err error)) error {
	if n.Config.Dir == "" {
		return errdefs.FailedPrecondition(errors.New("netfile: not set up"))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(n.Config.Dir, "leases.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return errdefs.Internal(fmt.Errorf("netfile: lock: %w", err))
	}
	s := state{Subnet: n.Config.Subnet.String(), Leases: map[string]netip.Addr{}}
	b, err := os.ReadFile(n.path())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	default:
		if err := json.Unmarshal(b, &s); err != nil {
			return errdefs.Internal(fmt.Errorf("netfile: %s is corrupt: %w", n.path(), err))
		}
		if s.Leases == nil {
			s.Leases = map[string]netip.Addr{}
		}
	}
	changed, err := f(&s)
	if err != nil || !changed {
		return err
	}
	return n.write(&s)
}

func (n *Net) write(s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return errdefs.Internal(err)
	}
	tmp, err := os.CreateTemp(n.Config.Dir, ".leases-*")
	if err != nil {
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	}
	if !n.Config.NoSync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return errdefs.Internal(fmt.Errorf("netfile: %w", err))
		}
	}
	if err := tmp.Close(); err != nil {
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	}
	if err := os.Rename(tmp.Name(), n.path()); err != nil {
		return errdefs.Internal(fmt.Errorf("netfile: %w", err))
	}
	return nil
}

// ConfigureNetwork leases an address for rec.ID on the plugin's network.
func (n *Net) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	if rec.Merged == nil || rec.Merged.HostConfig == nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("network stage: no host config for %s", rec.ID))
	}
	c := n.Config
	mode := string(rec.Merged.HostConfig.NetworkMode)
	if mode == "" || mode == "default" {
		mode = c.Network
	}
	var eps map[string]*network.EndpointSettings
	if rec.Request != nil && rec.Request.NetworkingConfig != nil {
		eps = rec.Request.NetworkingConfig.EndpointsConfig
	}
	out := &spec.Network{NetworkMode: mode, Networks: map[string]*network.EndpointSettings{}}
	switch {
	case rec.Merged.Config != nil && rec.Merged.Config.NetworkDisabled:
		return out, nil
	case mode == "host" || mode == "none":
		out.Networks[mode] = &network.EndpointSettings{}
		return out, nil
	case strings.HasPrefix(mode, "container:"):
		return out, nil
	case mode != c.Network:
		return nil, errdefs.NotFound(fmt.Errorf("network %s not found", mode))
	}
	// The docker CLI sends the endpoint of a container without --network as "default", which
	// the daemon renames to its default network: here, the plugin's network.
	if e, ok := eps["default"]; ok {
		if _, both := eps[c.Network]; both {
			return nil, errdefs.InvalidArgument(fmt.Errorf("endpoints for both default and %s", c.Network))
		}
		cp := make(map[string]*network.EndpointSettings, len(eps))
		for k, v := range eps {
			cp[k] = v
		}
		delete(cp, "default")
		cp[c.Network] = e
		eps = cp
	}
	for name := range eps {
		if name != c.Network {
			return nil, errdefs.NotFound(fmt.Errorf("network %s not found", name))
		}
	}
	ep := &network.EndpointSettings{}
	if e := eps[c.Network]; e != nil {
		cp := *e
		ep = &cp
	}
	var want netip.Addr
	if ep.IPAMConfig != nil {
		want = ep.IPAMConfig.IPv4Address
	}
	if want.IsValid() && (!want.Is4() || !c.Subnet.Contains(want)) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("no configured subnet or ip-range contain the IP address %s", want))
	}
	if want.IsValid() && (want == c.Subnet.Addr() || want == c.Gateway || want == last(c.Subnet)) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("address %s is reserved on network %s", want, c.Network))
	}
	var addr netip.Addr
	err := n.update(func(s *state) (bool, error) {
		if have, ok := s.Leases[rec.ID]; ok && (!want.IsValid() || want == have) {
			addr = have // done again for the same ID: the same lease
			return false, nil
		}
		used := make(map[netip.Addr]string, len(s.Leases))
		for id, a := range s.Leases {
			used[a] = id
		}
		if want.IsValid() {
			if owner, taken := used[want]; taken && owner != rec.ID {
				return false, errdefs.Conflict(fmt.Errorf("Address already in use: %s on network %s is leased to container %s", want, c.Network, owner))
			}
			addr = want
		} else {
			a, err := next(c, s, used)
			if err != nil {
				return false, err
			}
			addr = a
			s.Next = a.Next()
		}
		s.Leases[rec.ID] = addr
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte("netfile:" + c.Network))
	ep.NetworkID = hex.EncodeToString(sum[:])
	ep.IPAddress, ep.IPPrefixLen, ep.Gateway = addr, c.Subnet.Bits(), c.Gateway
	out.Networks[c.Network] = ep
	if n.log != nil {
		n.log.Debug("leased", "container", rec.ID, "address", addr.String())
	}
	return out, nil
}

func next(c Config, s *state, used map[netip.Addr]string) (netip.Addr, error) {
	first, end := c.Subnet.Addr().Next(), last(c.Subnet)
	a := s.Next
	for i := 0; i < 1<<(32-c.Subnet.Bits()); i++ {
		if !a.IsValid() || !c.Subnet.Contains(a) || a == end {
			a = first
		}
		if _, taken := used[a]; !taken && a != c.Gateway {
			return a, nil
		}
		a = a.Next()
	}
	return netip.Addr{}, errdefs.Unavailable(fmt.Errorf("no available IPv4 addresses on network %s", c.Network))
}

func last(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Undo releases the address of rec.ID; it needs nothing but the ID.
func (n *Net) Undo(ctx context.Context, rec *spec.Record) error {
	return n.update(func(s *state) (bool, error) {
		if _, ok := s.Leases[rec.ID]; !ok {
			return false, nil
		}
		delete(s.Leases, rec.ID)
		return true, nil
	})
}

// Leases returns the leases in the file, container ID to address, for tests and tools.
func (n *Net) Leases() (map[string]netip.Addr, error) {
	var out map[string]netip.Addr
	err := n.update(func(s *state) (bool, error) {
		out = s.Leases
		return false, nil
	})
	return out, err
}

// ReadLeases reads the lease file under dir, for tests and tools that are not the plugin.
func ReadLeases(dir string) (map[string]netip.Addr, error) {
	b, err := os.ReadFile(filepath.Join(dir, "leases.json"))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]netip.Addr{}, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return s.Leases, nil
}

// SortedAddrs returns the addresses of leases, sorted.
func SortedAddrs(leases map[string]netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(leases))
	for _, a := range leases {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
