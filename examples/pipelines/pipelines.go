// Package pipelines holds example Slipway pipeline files (HCL) and embeds the default
// one, which the slipway CLI runs when no pipeline file is given.
package pipelines

import _ "embed"

// DefaultName is the name diagnostics give the embedded default pipeline.
const DefaultName = "default.hcl"

// Default is default.hcl: every stage with its built-in implementation and defaults.
//
//go:embed default.hcl
var Default []byte
