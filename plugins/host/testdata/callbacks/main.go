// Command callbacks is a test fixture: a network stage that uses the host callbacks. It
// looks up the container named in the label "callbacks.container", the image named in
// "callbacks.image" and the container named in "callbacks.missing", and reports what it
// found as warnings added through the host, beside a warning of its own output.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

func main() { sdk.Serve(sdk.Plugin{Name: "callbacks", Version: "0.0.1", Network: net{}}) }

type net struct{}

func (net) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	h, ok := sdk.HostFromContext(ctx)
	if !ok {
		return nil, errdefs.FailedPrecondition(errors.New("fixture: no host callbacks"))
	}
	labels := rec.Request.Config.Labels
	var report []string
	if ref := labels["callbacks.container"]; ref != "" {
		c, err := h.Container(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("fixture: lookup %s: %w", ref, err)
		}
		report = append(report, fmt.Sprintf("container %s: id=%s name=%s image=%s", ref, c.ID, c.Name, c.Image.ID))
	}
	if ref := labels["callbacks.image"]; ref != "" {
		img, err := h.Image(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("fixture: image %s: %w", ref, err)
		}
		report = append(report, fmt.Sprintf("image %s: id=%s cmd=%s", ref, img.ID, strings.Join(img.Config.Cmd, " ")))
	}
	if ref := labels["callbacks.missing"]; ref != "" {
		_, err := h.Container(ctx, ref)
		report = append(report, fmt.Sprintf("missing %s: class=%s err=%v", ref, errdefs.ClassOf(err), err))
		_, err = h.Image(ctx, ref)
		report = append(report, fmt.Sprintf("missing image %s: class=%s err=%v", ref, errdefs.ClassOf(err), err))
	}
	for _, w := range report {
		if err := h.Warn(ctx, w); err != nil {
			return nil, fmt.Errorf("fixture: warn: %w", err)
		}
	}
	return &spec.Network{NetworkMode: "bridge", Warnings: []string{"fixture: own warning"},
		Networks: map[string]*network.EndpointSettings{"bridge": {NetworkID: "n", IPAddress: netip.MustParseAddr("10.0.0.2"),
			IPPrefixLen: 24, Gateway: netip.MustParseAddr("10.0.0.1")}}}, nil
}

// Undo does nothing: the fixture leases nothing.
func (net) Undo(ctx context.Context, rec *spec.Record) error { return nil }
