// Command storagecopy is the storagecopy layer stage plugin for Slipway (see package
// storagecopy).
package main

import (
	"github.com/slipwayhq/slipway/examples/plugins/storagecopy"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

func main() {
	s := storagecopy.New()
	sdk.Serve(sdk.Plugin{Name: "storagecopy", Version: "0.1.0", Layer: s, Config: &s.Config})
}
