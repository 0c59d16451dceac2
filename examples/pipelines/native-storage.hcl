# Root filesystems on the native snapshotter (plain copies, no overlayfs): slower to
# prepare, works on any filesystem and in nested containers.

stage "layer" {
  use     = "snapshot"
  timeout = "2m"
  config {
    snapshotter = "native"
  }
}
