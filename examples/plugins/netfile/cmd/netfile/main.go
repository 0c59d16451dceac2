// Command netfile is the netfile network stage plugin for Slipway (see package netfile).
package main

import (
	"github.com/slipwayhq/slipway/examples/plugins/netfile"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

func main() {
	n := netfile.New()
	sdk.Serve(sdk.Plugin{Name: "netfile", Version: "0.1.0", Network: n, Config: &n.Config})
}
