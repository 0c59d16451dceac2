package api

import (
	"net/netip"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core/spec"
)

// inspectForVersion shapes an inspect response for API version v as moby's inspect handler
// does. Before API 1.52 moby also shows the default bridge's endpoint as top-level fields of
// NetworkSettings (deprecated in 1.44, removed in 1.52), zero values included, when the
// container is on the bridge network.
func inspectForVersion(resp container.InspectResponse, v string) any {
	if !versionLess(v, "1.52") || resp.NetworkSettings == nil {
		return resp
	}
	br := resp.NetworkSettings.Networks[network.NetworkBridge]
	if br == nil {
		return resp
	}
	ns := struct {
		*container.NetworkSettings
		EndpointID          string
		Gateway             string
		GlobalIPv6Address   string
		GlobalIPv6PrefixLen int
		IPAddress           string
		IPPrefixLen         int
		IPv6Gateway         string
		MacAddress          string
	}{resp.NetworkSettings, br.EndpointID, addrString(br.Gateway), addrString(br.GlobalIPv6Address), br.GlobalIPv6PrefixLen,
		addrString(br.IPAddress), br.IPPrefixLen, addrString(br.IPv6Gateway), br.MacAddress.String()}
	return struct {
		container.InspectResponse
		NetworkSettings any
	}{resp, ns}
}

// InspectAsServed is resp as GET /containers/{id}/json answers it at DefaultVersion, what
// docker inspect shows through slipway serve; `slipway inspect` prints it so that both agree.
func InspectAsServed(resp container.InspectResponse) any {
	return inspectForVersion(resp, DefaultVersion)
}

// addrString is an address as moby's JSON shows it: "" when unset.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// DefaultNetwork does what moby's create handler does before anything else: a missing host
// config becomes an empty one, and an empty or "default" network mode names the default
// network ("bridge"), an endpoint keyed "default" moving to it. So inspect shows "bridge".
// The API's create and `slipway create` both call it, so that their containers look alike.
func DefaultNetwork(req *spec.CreateRequest) {
	if req.HostConfig == nil {
		req.HostConfig = &container.HostConfig{}
	}
	hc := req.HostConfig
	if hc.NetworkMode != "" && !hc.NetworkMode.IsDefault() {
		return
	}
	hc.NetworkMode = network.NetworkBridge
	if nc := req.NetworkingConfig; nc != nil {
		if ep, ok := nc.EndpointsConfig[network.NetworkDefault]; ok {
			nc.EndpointsConfig[network.NetworkBridge] = ep
			delete(nc.EndpointsConfig, network.NetworkDefault)
		}
	}
}
