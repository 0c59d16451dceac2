// Package noop is a network stage that leases nothing and returns a fixed endpoint.
package noop

import (
	"context"
	"net/netip"

	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core/spec"
)

// Net is the stage.
type Net struct{}

// ConfigureNetwork returns a fixed endpoint on "bridge".
func (Net) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	return &spec.Network{NetworkMode: "bridge", Networks: map[string]*network.EndpointSettings{
		"bridge": {NetworkID: "n", IPAddress: netip.MustParseAddr("10.0.0.2"), IPPrefixLen: 24, Gateway: netip.MustParseAddr("10.0.0.1")}}}, nil
}

// Undo does nothing.
func (Net) Undo(ctx context.Context, rec *spec.Record) error { return nil }
