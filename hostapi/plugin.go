package hostapi

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// GRPCPlugin is the go-plugin plugin of a Slipway stage plugin. In a plugin process Backend
// is set and GRPCServer serves it; on the host it is nil and GRPCClient returns a *Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Backend Backend
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the backend's services, and serves them on the fd channel too when
// the host offers one (see CapFDChannel). It runs before go-plugin's handshake, so the host
// knows whether the channel is served by the time it connects.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	b := newServed(p.Backend, broker)
	registerServices(s, b)
	ctl, err := openChannel()
	if err != nil {
		// The host falls back to gRPC when the channel does not answer.
		fmt.Fprintf(os.Stderr, "slipway plugin: fd channel not served: %v\n", err)
		return nil
	}
	if ctl != nil {
		cs := newChannelServer()
		registerServices(cs, b)
		go func() { _ = cs.serve(ctl) }()
	}
	return nil
}

// GRPCClient returns a *Client; ctx is cancelled when the plugin process exits.
// The client serves the host's callbacks on broker.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	c := NewClient(ctx, conn)
	c.serveHost(broker)
	return c, nil
}
