# The default Slipway pipeline: what slipway runs when no --pipeline is given.
# Every stage is named with its built-in implementation and its default settings,
# so this file is a starting point to copy and change.

# state_root = env("SLIPWAY_ROOT")   # the CLI's --root and SLIPWAY_ROOT win

stage "verify" {
  use = "moby" # validates the request as moby's daemon does
}

stage "image" {
  use = "local" # the local image store (slipway image load)
}

stage "merge" {
  use = "moby" # fills the container config from the image config
}

stage "security" {
  use = "selinux" # SELinux labels, AppArmor/seccomp/no-new-privileges options
}

stage "network" {
  use = "ipam"
  config {
    network "bridge" {
      subnet  = "172.17.0.0/16"
      gateway = "172.17.0.1"
    }
    network "slipway" {
      subnet       = "172.30.0.0/16"
      gateway      = "172.30.0.1"
      subnet6      = "fd00:5117:3a7::/64"
      gateway6     = "fd00:5117:3a7::1"
      user_defined = true
    }
  }
}

stage "layer" {
  use = "snapshot"
  config {
    snapshotter = "auto" # overlayfs where the kernel allows it, native otherwise
  }
}

stage "mkdir" {
  use = "local"
  config {
    remapped_root_gid = 0 # owns container roots and working directories (user namespace remapping)
    remapped_root_uid = 0 # owns the working directories made inside root filesystems
  }
}

stage "register" {
  use = "store" # reserves the name early, commits the record last
}
