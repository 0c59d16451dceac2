# The network stage served by the netfile plugin (examples/plugins/netfile), and a
# policy check that runs before any filesystem work. A plugin block pins the binary by
# its sha256: Slipway refuses to run a binary whose digest differs. Build the plugin
# and put its digest here (sha256sum ../plugins/netfile/netfile).

plugin "netfile" {
  path   = "../plugins/netfile/netfile"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}

stage "network" {
  use     = "plugin.netfile"
  timeout = "5s"
  config {
    file = "/var/lib/slipway/networks.json"
  }
}

plugin "policy" {
  path   = "../plugins/policy/policy"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}

check "policy" {
  before = "layer"
  use    = "plugin.policy"
  config {
    allowed_registries = ["docker.io", "ghcr.io"]
  }
}
