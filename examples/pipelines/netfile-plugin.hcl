# The network stage served by the netfile plugin (examples/plugins/netfile), and the
# policycheck plugin as a check before any filesystem work. A plugin block pins the binary
# by its sha256: Slipway refuses a binary whose digest differs. Build each plugin next to
# its source and put its digest here (sha256sum ../plugins/netfile/netfile).

plugin "netfile" {
  path   = "../plugins/netfile/netfile"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}

stage "network" {
  use     = "plugin.netfile"
  timeout = "5s"
  config {
    dir = "/var/lib/slipway-netfile" # leases.json lives here; subnet 10.88.0.0/16
  }
}

plugin "policycheck" {
  path   = "../plugins/policycheck/policycheck"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}

check "policy" {
  before = "layer"
  use    = "plugin.policycheck"
  config {
    require = ["owner"]
  }
}
