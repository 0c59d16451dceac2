package hostapi

import (
	"context"

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

// GRPCServer registers the backend's services.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterWithBroker(s, p.Backend, broker)
	return nil
}

// GRPCClient returns a *Client; ctx is cancelled when the plugin process exits.
// The client serves the host's callbacks on broker.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	c := NewClient(ctx, conn)
	c.serveHost(broker)
	return c, nil
}
