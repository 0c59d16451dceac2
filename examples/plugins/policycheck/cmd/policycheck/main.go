// Command policycheck is the policycheck check plugin for Slipway (see package policycheck).
package main

import (
	"github.com/slipwayhq/slipway/examples/plugins/policycheck"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

func main() {
	c := policycheck.New()
	sdk.Serve(sdk.Plugin{Name: "policycheck", Version: "0.1.0", Check: c, Config: &c.Config})
}
