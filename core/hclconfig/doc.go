// Package hclconfig reads Slipway pipeline files: HCL that chooses the implementation of
// every stage (a built-in or a plugin), configures it, places check steps between the stages
// and declares the plugins with the digest their binary must have.
//
// A pipeline is one file or a directory of *.hcl files:
//
//	state_root = env("SLIPWAY_ROOT")   # optional; the CLI's --root wins
//	locals { sub = "172.30.0.0/16" }
//	stage "network" {
//	  use     = "ipam"                 # a built-in, or "plugin.<name>"
//	  timeout = "10s"
//	  config {
//	    network "slipway" { subnet = local.sub  user_defined = true }
//	  }
//	}
//	plugin "netfile" { path = "./bin/netfile"  sha256 = "..." }
//	check "policy" { before = "layer"  use = "plugin.policy" }
//
// A stage without a block runs the registry's default implementation. Load decodes and
// validates everything without touching the host (it reads plugin binaries to check their
// digest, nothing more) and returns every problem at once as hcl.Diagnostics with source
// ranges. The result is a Plan: printable as text or JSON, drawable as a DOT or Mermaid
// graph, and turned into a core.Pipeline by Plan.Pipeline.
//
// The package knows no implementation: the caller hands Load a Registry (steps/standard
// builds the built-in one), and plugins are built through the Registry's PluginBuilder, so
// the plugin host stays out of this package.
package hclconfig
