plugin "netfile" {
  path   = "../bin/netfile"
  sha256 = "3aa59f64a09d8af412b871f7be0d93ae1d7b1cc20580fbd7e4b1cb4b787b10a1"
}

stage "network" {
  use     = "plugin.netfile"
  timeout = "5s"
  config {
    file = "/etc/slipway/networks.json"
  }
}

check "policy" {
  before = "layer"
  use    = "plugin.netfile"
  config {
    file = "policy.rego"
  }
}
