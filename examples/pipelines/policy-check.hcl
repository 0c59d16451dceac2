# A policy check served by the policycheck plugin (examples/plugins/policycheck), placed
# before the layer stage: it sees the merged labels (the request's and the image's) and
# vetoes the create before any filesystem work. A container labelled policy.deny=true is
# always refused. Build the plugin next to its source and put its digest here
# (sha256sum ../plugins/policycheck/policycheck).

plugin "policycheck" {
  path   = "../plugins/policycheck/policycheck"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}

check "policy" {
  before  = "layer"
  use     = "plugin.policycheck"
  timeout = "2s"
  config {
    require = ["owner"]                # every container names its owner
    deny    = { "env" = "forbidden" }  # label => value refused ("*": any value)
    warn    = ["deprecated"]           # present: the create succeeds with a warning
  }
}
