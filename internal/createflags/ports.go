package createflags

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/docker/go-connections/nat"
	"github.com/moby/moby/api/types/network"
)

// parsePublish turns -p values into the exposed ports and port bindings the CLI sends.
// A value is either the short syntax [[IP:]HOST_PORT:]CONTAINER_PORT[/PROTO], where both
// ports may be ranges, or the long syntax published=P,target=T[,protocol=PROTO]. Both
// results are non-nil.
func parsePublish(specs []string) (network.PortSet, network.PortMap, error) {
	short := make([]string, 0, len(specs))
	for _, s := range specs {
		if !strings.Contains(s, "=") {
			short = append(short, s)
			continue
		}
		params := map[string]string{"protocol": "tcp"}
		for _, p := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return nil, nil, fmt.Errorf("invalid publish opts format (should be name=value but got '%s')", p)
			}
			params[k] = v
		}
		short = append(short, params["published"]+":"+params["target"]+"/"+params["protocol"])
	}

	exposed, bindings, err := nat.ParsePortSpecs(short)
	if err != nil {
		return nil, nil, err
	}
	ports := make(network.PortSet, len(exposed))
	for p := range exposed {
		port, err := network.ParsePort(string(p))
		if err != nil {
			return nil, nil, err
		}
		ports[port] = struct{}{}
	}
	portMap := make(network.PortMap, len(bindings))
	for p, bs := range bindings {
		port, err := network.ParsePort(string(p))
		if err != nil {
			return nil, nil, err
		}
		out := make([]network.PortBinding, 0, len(bs))
		for _, b := range bs {
			var ip netip.Addr
			if b.HostIP != "" {
				if ip, err = netip.ParseAddr(b.HostIP); err != nil {
					return nil, nil, fmt.Errorf("invalid IP address: %s", b.HostIP)
				}
			}
			out = append(out, network.PortBinding{HostIP: ip, HostPort: b.HostPort})
		}
		portMap[port] = out
	}
	return ports, portMap, nil
}

// addExposed adds the --expose values (PORT[/PROTO] or START-END[/PROTO]) to ports.
func addExposed(ports network.PortSet, specs []string) error {
	for _, e := range specs {
		if strings.Contains(e, ":") {
			return fmt.Errorf("invalid port format for --expose: %s", e)
		}
		proto, port := nat.SplitProtoPort(e)
		start, end, err := nat.ParsePortRange(port)
		if err != nil {
			return fmt.Errorf("invalid range format for --expose: %s, error: %w", e, err)
		}
		for i := start; i <= end; i++ {
			p, err := network.ParsePort(strconv.FormatUint(i, 10) + "/" + proto)
			if err != nil {
				return fmt.Errorf("invalid range format for --expose: %s, error: %w", e, err)
			}
			ports[p] = struct{}{}
		}
	}
	return nil
}
