// Command noop is a test fixture: a network stage that does nothing, to measure what a
// plugin call costs beyond the stage's own work.
package main

import (
	"github.com/slipwayhq/slipway/plugins/host/testdata/noop/noop"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

func main() { sdk.Serve(sdk.Plugin{Name: "noop", Version: "0.0.1", Network: noop.Net{}}) }
