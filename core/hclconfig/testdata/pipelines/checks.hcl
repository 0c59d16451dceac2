# Checks at every kind of place, in file order at one place.
check "first" {
  before = "verify"
  use    = "deny"
}

check "after-merge" {
  after   = "merge"
  use     = "deny"
  timeout = "2s"
  config {
    images = ["evil:latest"]
  }
}

check "before-reserve" {
  before = "register"
  use    = "deny"
}

check "last" {
  after = "register"
  use   = "deny"
}

check "before-layer-1" {
  before = "layer"
  use    = "deny"
}

check "before-layer-2" {
  before = "layer"
  use    = "deny"
}

stage "layer" {
  use     = "snapshot"
  timeout = "1m30s"
  config {
    snapshotter = "native"
  }
}
