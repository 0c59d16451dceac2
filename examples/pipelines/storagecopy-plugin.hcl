# The layer stage served by the storagecopy plugin (examples/plugins/storagecopy): each
# container's root filesystem is a full copy of its image, made with containerd's native
# snapshotter in the plugin's own snapshot root. Build the plugin next to its source and
# put its digest here (sha256sum ../plugins/storagecopy/storagecopy).

plugin "storagecopy" {
  path   = "../plugins/storagecopy/storagecopy"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
}

stage "layer" {
  use     = "plugin.storagecopy"
  timeout = "2m" # copying a large image takes a while
  config {
    root = "/var/lib/slipway-storagecopy" # the plugin's snapshots; layers are streamed from the engine
  }
}
