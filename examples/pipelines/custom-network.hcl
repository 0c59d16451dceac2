# The built-in IPAM with other subnets: the default bridge moves to 10.88.0.0/16 and
# two user-defined networks are carved out of 10.90.0.0/16 with cidrsubnet.
# Stages without a block keep their default implementation.

locals {
  base = "10.90.0.0/16"
}

stage "network" {
  use     = "ipam"
  timeout = "10s"
  config {
    network "bridge" {
      subnet  = "10.88.0.0/16"
      gateway = "10.88.0.1"
    }
    network "frontend" {
      subnet       = cidrsubnet(local.base, 8, 1)
      gateway      = cidrhost(cidrsubnet(local.base, 8, 1), 1)
      user_defined = true
    }
    network "backend" {
      subnet       = cidrsubnet(local.base, 8, 2)
      gateway      = cidrhost(cidrsubnet(local.base, 8, 2), 1)
      subnet6      = "fd00:ba:c::/64"
      gateway6     = "fd00:ba:c::1"
      user_defined = true
    }
  }
}
