// Package moby is the verify stage as moby's daemon does it: the checks of the API router and
// request decoder, verifyContainerSettings (container config, host config, the Linux resource
// and namespace checks against the host's real cgroup state), the bind and mount parsing of
// registerMountPoints and the networking config checks, then the defaults of
// adaptContainerSettings (MemorySwap = 2×Memory, ShmSize 64 MiB, IpcMode private, CgroupnsMode
// private on cgroup v2 and host on v1, OomKillDisable false, Runtime runc) and the name rule.
//
// Verify works on a deep copy and never changes the request. NetworkMode is left as given
// (the network stage fills in the default). A nil HostConfig skips every host check and
// becomes an empty HostConfig with the defaults.
//
// # Which moby
//
// Error texts are moby's newest where it changed them: "config cannot be empty ..." lower
// case, "range of CPUs ..." lower case and checked only when NanoCPUs is non-zero, "invalid
// CPU shares (N): value must be a positive integer", the restart-policy texts of the Engine
// API module (container.ValidateRestartPolicy), container port 0 refused, the working
// directory cleaned, StartInterval checked, hostname longer than 64 bytes refused (checked with
// the container config, so also when HostConfig is nil), KernelMemory gone. The decoder texts
// are moby 28's ("invalid network mode: ...", "invalid isolation (x): linux only supports
// 'default'", "invalid option: QoS maximum ... is not supported on linux", "kernel does not
// support CPU real-time scheduler"). Behaviour that moby gates on the API version is that of
// the newest API: several endpoints are allowed, mount option blocks must match the mount
// type, interface-specific sysctls (net.*.*.ethN.*) are refused, PidsLimit <= 0 becomes nil.
//
// Deliberate differences: the name is checked last (moby checks it in newContainer, after
// every check here), the available memory nodes are read from cpuset.mems (moby reads the
// CPU list for both, a bug), all endpoint errors are sorted by network name, capabilities are
// validated but stored as given (moby normalises them only when it builds the OCI spec),
// ulimits are not validated (moby merges them at start), and the per-network checks that need
// the network (predefined networks and static addresses, subnets) are left to the network
// stage. User-namespace remapping is off unless WithUserNamespaceRemap is given.
package moby
