state_root = "/var/lib/slipway-test"

locals {
  subnet = env("SLIPWAY_TEST_SUBNET")
}
