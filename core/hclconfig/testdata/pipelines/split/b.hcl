# Uses a local from a.hcl: the files of a directory are one pipeline.
stage "network" {
  use = "ipam"
  config {
    network "only" {
      subnet       = local.subnet
      user_defined = true
    }
  }
}
