package createflags

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// attachment is one --network value.
type attachment struct {
	target       string
	aliases      []string
	driverOpts   map[string]string
	links        []string
	ipv4, ipv6   string
	linkLocalIPs []string
	mac          string
	gwPriority   int
}

var longNetworkSyntax = regexp.MustCompile(`\w+=\w+(,\w+=\w+)*`)

// parseNetworkFlag parses a --network value: a network name or mode, or the CSV form
// name=NET,alias=A,ip=IP,ip6=IP,mac-address=MAC,link-local-ip=IP,driver-opt=K=V,gw-priority=N.
// Keys and values of the CSV form are lower-cased and trimmed, as the CLI does.
func parseNetworkFlag(value string) (attachment, error) {
	if !longNetworkSyntax.MatchString(value) {
		return attachment{target: value}, nil
	}
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return attachment{}, err
	}
	var a attachment
	for _, field := range fields {
		key, val, ok := strings.Cut(strings.ToLower(field), "=")
		if !ok || key == "" {
			return attachment{}, fmt.Errorf("invalid field %s", field)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "name":
			a.target = val
		case "alias":
			a.aliases = append(a.aliases, val)
		case "ip":
			a.ipv4 = val
		case "ip6":
			a.ipv6 = val
		case "mac-address":
			a.mac = val
		case "link-local-ip":
			a.linkLocalIPs = append(a.linkLocalIPs, val)
		case "driver-opt":
			k, v, ok := strings.Cut(val, "=")
			if !ok || k == "" {
				return attachment{}, errors.New("invalid key value pair format in driver options")
			}
			if a.driverOpts == nil {
				a.driverOpts = map[string]string{}
			}
			a.driverOpts[strings.TrimSpace(k)] = strings.TrimSpace(v)
		case "gw-priority":
			n, err := strconv.Atoi(val)
			if err != nil {
				var numErr *strconv.NumError
				if errors.As(err, &numErr) {
					err = numErr.Err
				}
				return attachment{}, fmt.Errorf("invalid gw-priority (%s): %w", val, err)
			}
			a.gwPriority = n
		default:
			return attachment{}, errors.New("invalid field key " + key)
		}
	}
	if a.target == "" {
		return attachment{}, errors.New("network name/id is not specified")
	}
	return a, nil
}

// endpoints builds NetworkingConfig.EndpointsConfig as the docker CLI 28 does:
//   - no --network: one entry "default", carrying --ip, --ip6, --mac-address,
//     --link-local-ip and --network-alias (the daemon renames it to its default network);
//   - the first --network gets those flags too; a single network with nothing to configure
//     gets no entry (the daemon makes one);
//   - every further --network gets its own entry from its CSV options.
func (o *Options) endpoints() (map[string]*network.EndpointSettings, error) {
	nets := o.network.values
	eps := make(map[string]*network.EndpointSettings, len(nets))
	if len(nets) == 0 {
		a := attachment{target: "default"}
		if err := o.applyEndpointFlags(&a); err != nil {
			return nil, err
		}
		ep, err := endpointSettings(a)
		if err != nil {
			return nil, err
		}
		eps["default"] = ep
		return eps, nil
	}
	var userDefined, builtin bool
	for i, a := range nets {
		if container.NetworkMode(a.target).IsUserDefined() {
			userDefined = true
		} else {
			builtin = true
		}
		if i == 0 {
			if err := o.applyEndpointFlags(&a); err != nil {
				return nil, err
			}
		}
		ep, err := endpointSettings(a)
		if err != nil {
			return nil, err
		}
		if _, dup := eps[a.target]; dup {
			return nil, fmt.Errorf("network %q is specified multiple times", a.target)
		}
		if i == 0 && len(nets) == 1 && reflect.DeepEqual(*ep, network.EndpointSettings{}) {
			continue
		}
		eps[a.target] = ep
	}
	if userDefined && builtin {
		return nil, errors.New("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
	}
	return eps, nil
}

// applyEndpointFlags moves --network-alias, --link, --ip, --ip6, --mac-address and
// --link-local-ip onto the first network, refusing to mix them with the same setting in
// the CSV form of --network.
func (o *Options) applyEndpointFlags(a *attachment) error {
	switch {
	case len(a.aliases) > 0 && len(o.aliases.values) > 0:
		return errors.New("conflicting options: cannot specify both --network-alias and per-network alias")
	case len(a.links) > 0 && len(o.links.values) > 0:
		return errors.New("conflicting options: cannot specify both --link and per-network links")
	case a.ipv4 != "" && o.ipv4 != "":
		return errors.New("conflicting options: cannot specify both --ip and per-network IPv4 address")
	case a.ipv6 != "" && o.ipv6 != "":
		return errors.New("conflicting options: cannot specify both --ip6 and per-network IPv6 address")
	case a.mac != "" && o.macAddress != "":
		return errors.New("conflicting options: cannot specify both --mac-address and per-network MAC address")
	case len(a.linkLocalIPs) > 0 && len(o.linkLocalIPs.values) > 0:
		return errors.New("conflicting options: cannot specify both --link-local-ip and per-network link-local IP addresses")
	}
	if len(o.aliases.values) > 0 {
		a.aliases = append([]string(nil), o.aliases.values...)
	}
	// On a user-defined network --link is an endpoint option (an alias); on the default
	// bridge it is a legacy link, sent in HostConfig.Links only.
	if container.NetworkMode(a.target).IsUserDefined() && len(o.links.values) > 0 {
		a.links = append([]string(nil), o.links.values...)
	}
	if o.ipv4 != "" {
		a.ipv4 = o.ipv4
	}
	if o.ipv6 != "" {
		a.ipv6 = o.ipv6
	}
	if o.macAddress != "" {
		a.mac = o.macAddress
	}
	if len(o.linkLocalIPs.values) > 0 {
		a.linkLocalIPs = append([]string(nil), o.linkLocalIPs.values...)
	}
	return nil
}

// endpointSettings turns one attachment into the endpoint settings sent for it.
func endpointSettings(a attachment) (*network.EndpointSettings, error) {
	if strings.TrimSpace(a.target) == "" {
		return nil, errors.New("no name set for network")
	}
	if !container.NetworkMode(a.target).IsUserDefined() {
		if len(a.aliases) > 0 {
			return nil, errors.New("network-scoped aliases are only supported for user-defined networks")
		}
		if len(a.links) > 0 {
			return nil, errors.New("links are only supported for user-defined networks")
		}
	}
	ep := &network.EndpointSettings{GwPriority: a.gwPriority}
	if len(a.aliases) > 0 {
		ep.Aliases = append([]string(nil), a.aliases...)
	}
	if len(a.driverOpts) > 0 {
		ep.DriverOpts = make(map[string]string, len(a.driverOpts))
		for k, v := range a.driverOpts {
			ep.DriverOpts[k] = v
		}
	}
	if len(a.links) > 0 {
		ep.Links = append([]string(nil), a.links...)
	}
	if a.ipv4 != "" || a.ipv6 != "" || len(a.linkLocalIPs) > 0 {
		ipam := &network.EndpointIPAMConfig{}
		var err error
		if a.ipv4 != "" {
			if ipam.IPv4Address, err = parseAddr(a.ipv4, "IPv4"); err != nil {
				return nil, err
			}
		}
		if a.ipv6 != "" {
			if ipam.IPv6Address, err = parseAddr(a.ipv6, "IPv6"); err != nil {
				return nil, err
			}
		}
		for _, s := range a.linkLocalIPs {
			ip, err := parseAddr(s, "")
			if err != nil {
				return nil, err
			}
			ipam.LinkLocalIPs = append(ipam.LinkLocalIPs, ip)
		}
		ep.IPAMConfig = ipam
	}
	if a.mac != "" {
		hw, err := net.ParseMAC(strings.TrimSpace(a.mac))
		if err != nil {
			return nil, fmt.Errorf("%s is not a valid mac address", a.mac)
		}
		ep.MacAddress = network.HardwareAddr(hw)
	}
	return ep, nil
}

// parseAddr parses an endpoint address; family "IPv4" or "IPv6" also checks its family.
// The docker CLI 28 sends these as strings and leaves the checks to the daemon; the API
// types Slipway uses hold parsed addresses, so they are checked here.
func parseAddr(s, family string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		if family == "" {
			return netip.Addr{}, fmt.Errorf("invalid IP address: %s", s)
		}
		return netip.Addr{}, fmt.Errorf("invalid %s address: %s", family, s)
	}
	switch {
	case family == "IPv4" && !ip.Unmap().Is4():
		return netip.Addr{}, fmt.Errorf("invalid IPv4 address: %s", s)
	case family == "IPv4":
		ip = ip.Unmap()
	case family == "IPv6" && !ip.Is6():
		return netip.Addr{}, fmt.Errorf("invalid IPv6 address: %s", s)
	}
	return ip, nil
}
