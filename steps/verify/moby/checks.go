package moby

import (
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"

	ccap "github.com/containerd/containerd/v2/pkg/cap"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/sys/signal"
)

// linuxMinMemory is moby's smallest memory limit and reservation (6 MiB).
const linuxMinMemory = 6291456

// endpointSysctls is libnetwork's driver option for per-interface sysctls.
const endpointSysctls = "com.docker.network.endpoint.sysctls"

// checker runs moby's create-time checks, in moby's order, on the copies in a Verified. It
// changes the copies where moby does (discarded limits, cleaned paths) and gathers warnings.
type checker struct {
	v        *Verifier
	si       *SysInfo
	cfg      *container.Config
	hc       *container.HostConfig
	nc       *network.NetworkingConfig
	warnings []string
}

func (c *checker) warn(s string) { c.warnings = append(c.warnings, s) }

func (c *checker) run() error {
	if c.hc != nil {
		// What moby's API router and request decoder check before the daemon sees the request.
		if err := c.decodeChecks(); err != nil {
			return err
		}
	}
	// verifyContainerSettings.
	if err := validateContainerConfig(c.cfg); err != nil {
		return err
	}
	if c.hc != nil {
		if err := c.validateHostConfig(); err != nil {
			return err
		}
		if err := c.verifyPlatform(); err != nil {
			return err
		}
		// registerMountPoints parses the binds and refuses duplicate targets.
		if err := c.validateBinds(); err != nil {
			return err
		}
	}
	return validateNetworkingConfig(c.nc)
}

func (c *checker) decodeChecks() error {
	hc, cfg := c.hc, c.cfg
	if string(hc.NetworkMode) == "container" || hc.NetworkMode.IsContainer() {
		switch {
		case hc.NetworkMode.ConnectedContainer() == "":
			return errors.New("invalid network mode: invalid container format container:<name|id>")
		case cfg.Hostname != "":
			return errors.New("conflicting options: hostname and the network mode")
		case len(hc.Links) > 0:
			return errors.New("conflicting options: container type network can't be used with links. This would result in undefined behavior")
		case len(hc.DNS) > 0:
			return errors.New("conflicting options: dns and the network mode")
		case len(hc.ExtraHosts) > 0:
			return errors.New("conflicting options: custom host-to-IP mapping and the network mode")
		case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
			return errors.New("conflicting options: port publishing and the container type network mode")
		case len(cfg.ExposedPorts) > 0:
			return errors.New("conflicting options: port exposing and the container type network mode")
		}
	}
	if hc.UTSMode.IsHost() && cfg.Hostname != "" {
		return errors.New("conflicting options: hostname and the UTS mode")
	}
	if hc.NetworkMode.IsHost() && len(hc.Links) > 0 {
		return errors.New("conflicting options: host type networking can't be used with links. This would result in undefined behavior")
	}
	if !hc.Isolation.IsValid() {
		return fmt.Errorf("invalid isolation (%s): linux only supports 'default'", hc.Isolation)
	}
	if hc.IOMaximumBandwidth != 0 {
		return errors.New("invalid option: QoS maximum bandwidth configuration is not supported on linux")
	}
	if hc.IOMaximumIOps != 0 {
		return errors.New("invalid option: QoS maximum IOPs configuration is not supported on linux")
	}
	if (hc.CPURealtimePeriod != 0 || hc.CPURealtimeRuntime != 0) && !c.si.CPURealtime {
		return errors.New("kernel does not support CPU real-time scheduler")
	}
	if hc.CPURealtimePeriod != 0 && hc.CPURealtimeRuntime != 0 && hc.CPURealtimeRuntime > hc.CPURealtimePeriod {
		return errors.New("cpu real-time runtime cannot be higher than cpu real-time period")
	}
	if c.si.CPUShares && hc.CPUShares < 0 {
		return fmt.Errorf("invalid CPU shares (%d): value must be a positive integer", hc.CPUShares)
	}
	for _, m := range hc.Mounts {
		if m.VolumeOptions != nil && m.Type != mount.TypeVolume {
			return fmt.Errorf("VolumeOptions must not be specified on mount type %q", m.Type)
		}
		if m.BindOptions != nil && m.Type != mount.TypeBind {
			return fmt.Errorf("BindOptions must not be specified on mount type %q", m.Type)
		}
		if m.TmpfsOptions != nil && m.Type != mount.TypeTmpfs {
			return fmt.Errorf("TmpfsOptions must not be specified on mount type %q", m.Type)
		}
	}
	if hc.NetworkMode.IsPrivate() {
		for k := range hc.Sysctls {
			if spl := strings.SplitN(k, ".", 5); len(spl) == 5 && spl[0] == "net" && strings.HasPrefix(spl[3], "eth") {
				return fmt.Errorf("interface specific sysctl setting %q must be supplied using driver option '%s'", k, endpointSysctls)
			}
		}
	}
	if hc.PidsLimit != nil && *hc.PidsLimit <= 0 {
		hc.PidsLimit = nil
	}
	return nil
}

// validateContainerConfig is moby's check of the container config.
func validateContainerConfig(cfg *container.Config) error {
	if cfg.WorkingDir != "" {
		wd := filepath.FromSlash(cfg.WorkingDir)
		if !filepath.IsAbs(wd) {
			return fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
		}
		cfg.WorkingDir = filepath.Clean(wd)
	}
	if cfg.StopSignal != "" {
		if _, err := signal.ParseSignal(cfg.StopSignal); err != nil {
			return err
		}
	}
	for _, e := range cfg.Env {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			return errors.New("invalid environment variable: " + e)
		}
	}
	if h := cfg.Healthcheck; h != nil {
		const minimum = container.MinimumDuration
		switch {
		case h.Interval != 0 && h.Interval < minimum:
			return fmt.Errorf("Interval in Healthcheck cannot be less than %s", minimum)
		case h.Timeout != 0 && h.Timeout < minimum:
			return fmt.Errorf("Timeout in Healthcheck cannot be less than %s", minimum)
		case h.Retries < 0:
			return errors.New("Retries in Healthcheck cannot be negative")
		case h.StartPeriod != 0 && h.StartPeriod < minimum:
			return fmt.Errorf("StartPeriod in Healthcheck cannot be less than %s", minimum)
		case h.StartInterval != 0 && h.StartInterval < minimum:
			return fmt.Errorf("StartInterval in Healthcheck cannot be less than %s", minimum)
		}
	}
	if len(cfg.Hostname) > 64 {
		return fmt.Errorf("hostname %q is too long (maximum 64 bytes)", cfg.Hostname)
	}
	return nil
}

func (c *checker) validateHostConfig() error {
	hc := c.hc
	if hc.AutoRemove && !hc.RestartPolicy.IsNone() {
		return errors.New("can't create 'AutoRemove' container with restart policy")
	}
	for i := range hc.Mounts {
		m := &hc.Mounts[i]
		if m.Type == mount.TypeImage {
			c.warn("Image mount is an experimental feature")
		}
		if err := validateMount(m, true); err != nil {
			return err
		}
	}
	for _, h := range hc.ExtraHosts {
		if err := validateExtraHost(h); err != nil {
			return err
		}
	}
	if err := validatePortBindings(hc.PortBindings); err != nil {
		return err
	}
	if err := container.ValidateRestartPolicy(hc.RestartPolicy); err != nil {
		return err
	}
	if err := validateCaps(hc.CapAdd); err != nil {
		return fmt.Errorf("invalid CapAdd: %w", err)
	}
	if err := validateCaps(hc.CapDrop); err != nil {
		return fmt.Errorf("invalid CapDrop: %w", err)
	}
	if !hc.Isolation.IsValid() {
		return fmt.Errorf("invalid isolation '%s' on linux", hc.Isolation)
	}
	if _, ok := hc.Annotations[""]; ok {
		return errors.New("invalid Annotations: the empty string is not permitted as an annotation key")
	}
	return nil
}

// validateExtraHost accepts "name:ip" split at the first colon (so IPv6 works) and the
// special "host-gateway".
func validateExtraHost(val string) error {
	name, ip, ok := strings.Cut(val, ":")
	if !ok || name == "" {
		return fmt.Errorf("bad format for add-host: %q", val)
	}
	if ip != "host-gateway" && net.ParseIP(strings.TrimSpace(ip)) == nil {
		return fmt.Errorf("invalid IP address in add-host: %q", ip)
	}
	return nil
}

// validatePortBindings refuses container port 0 and a host port that is not a port or range.
func validatePortBindings(ports network.PortMap) error {
	for p, bindings := range ports {
		if !p.IsValid() || p.Num() == 0 {
			return fmt.Errorf("invalid port specification: %q", p.String())
		}
		for _, pb := range bindings {
			if pb.HostPort == "" {
				continue
			}
			if _, err := network.ParsePortRange(pb.HostPort); err != nil {
				return fmt.Errorf("invalid port specification: %q", pb.HostPort)
			}
		}
	}
	return nil
}

// Capabilities: the names the kernel headers know, and those of the current process's
// bounding set; a known capability outside it is "not supported by your kernel".
var (
	knownCaps = func() map[string]bool {
		m := map[string]bool{}
		cur, err := ccap.Current()
		for _, n := range ccap.Known() {
			m[n] = err != nil || len(cur) == 0 || slices.Contains(cur, n)
		}
		return m
	}()
)

// NormalizeCapability returns moby's form of a capability name: upper case with "CAP_"
// prefixed, or "ALL".
func NormalizeCapability(c string) string {
	c = strings.ToUpper(c)
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

func validateCaps(caps []string) error {
	for _, c := range caps {
		c = NormalizeCapability(c)
		if c == "ALL" {
			continue
		}
		avail, ok := knownCaps[c]
		if !ok {
			return fmt.Errorf("unknown capability: %q", c)
		}
		if !avail {
			return fmt.Errorf("capability not supported by your kernel or not available in the current environment: %q", c)
		}
	}
	return nil
}

// verifyPlatform is moby's verifyPlatformContainerSettings on Linux.
func (c *checker) verifyPlatform() error {
	hc, si := c.hc, c.si
	if err := c.verifyResources(&hc.Resources); err != nil {
		return err
	}
	if !hc.IpcMode.Valid() {
		return fmt.Errorf("invalid IPC mode: %v", hc.IpcMode)
	}
	if !hc.PidMode.Valid() {
		return fmt.Errorf("invalid PID mode: %v", hc.PidMode)
	}
	if hc.ShmSize < 0 {
		return errors.New("SHM size can not be less than 0")
	}
	if !hc.UTSMode.Valid() {
		return fmt.Errorf("invalid UTS mode: %v", hc.UTSMode)
	}
	if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
		return fmt.Errorf("Invalid value %d, range for oom score adj is [-1000, 1000]", hc.OomScoreAdj)
	}
	if si.IPv4ForwardingDisabled && !hc.NetworkMode.IsHost() && !hc.NetworkMode.IsNone() {
		c.warn("IPv4 forwarding is disabled. Networking will not work.")
	}
	if hc.NetworkMode.IsHost() && len(hc.PortBindings) > 0 {
		c.warn("Published ports are discarded when using host network mode")
	}
	if c.v.remappedRoot && hc.UsernsMode.IsPrivate() {
		if hc.Privileged {
			return errors.New("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode")
		}
		if hc.NetworkMode.IsHost() {
			return errors.New("cannot share the host's network namespace when user namespaces are enabled")
		}
		if hc.PidMode.IsHost() {
			return errors.New("cannot share the host PID namespace when user namespaces are enabled")
		}
	}
	if hc.CgroupParent != "" && si.SystemdCgroup {
		if len(hc.CgroupParent) <= 6 || !strings.HasSuffix(hc.CgroupParent, ".slice") {
			return errors.New(`cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"`)
		}
	}
	if hc.Runtime == "" {
		hc.Runtime = c.v.defaultRuntime
	}
	if !c.v.runtimes[hc.Runtime] && !permissibleShimName(hc.Runtime) {
		return fmt.Errorf("unknown or invalid runtime name: %s", hc.Runtime)
	}
	for dest := range hc.Tmpfs {
		if err := validateTarget(dest); err != nil {
			return err
		}
	}
	if !hc.CgroupnsMode.Valid() {
		return fmt.Errorf("invalid cgroup namespace mode: %v", hc.CgroupnsMode)
	}
	if hc.CgroupnsMode.IsPrivate() && !si.CgroupNamespaces {
		c.warn("Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded.")
	}
	return nil
}

// permissibleShimName is containerd's runtime-name form ("io.containerd.runsc.v1"), which
// moby passes through without configuration.
func permissibleShimName(name string) bool {
	if filepath.IsAbs(name) || strings.ContainsRune(name, '/') {
		return false
	}
	prefix, _, ok := strings.Cut(name, ".")
	return ok && prefix != ""
}

// verifyResources is moby's verifyPlatformContainerResources for a create.
func (c *checker) verifyResources(r *container.Resources) error {
	si := c.si
	if r.MemorySwappiness != nil && *r.MemorySwappiness == -1 {
		r.MemorySwappiness = nil
	}
	// Memory.
	if r.Memory != 0 && r.Memory < linuxMinMemory {
		return errors.New("Minimum memory limit allowed is 6MB")
	}
	if r.Memory > 0 && !si.MemoryLimit {
		c.warn("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.")
		r.Memory = 0
		r.MemorySwap = -1
	}
	if r.Memory > 0 && r.MemorySwap != -1 && !si.SwapLimit {
		c.warn("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
		r.MemorySwap = -1
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return errors.New("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.Memory == 0 && r.MemorySwap > 0 {
		return errors.New("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.MemorySwappiness != nil && !si.MemorySwappiness {
		c.warn("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.")
		r.MemorySwappiness = nil
	}
	if r.MemorySwappiness != nil {
		if s := *r.MemorySwappiness; s < 0 || s > 100 {
			return fmt.Errorf("Invalid value: %v, valid memory swappiness range is 0-100", s)
		}
	}
	if r.MemoryReservation > 0 && !si.MemoryReservation {
		c.warn("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.")
		r.MemoryReservation = 0
	}
	if r.MemoryReservation > 0 && r.MemoryReservation < linuxMinMemory {
		return errors.New("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return errors.New("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.OomKillDisable != nil && !si.OomKillDisable {
		if *r.OomKillDisable {
			c.warn("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
		}
		r.OomKillDisable = nil
	}
	if r.OomKillDisable != nil && *r.OomKillDisable && r.Memory == 0 {
		c.warn("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.")
	}
	if r.PidsLimit != nil && !si.PidsLimit {
		if *r.PidsLimit > 0 {
			c.warn("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.")
		}
		r.PidsLimit = nil
	}

	// CPU.
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return errors.New("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return errors.New("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if r.NanoCPUs > 0 && !si.CPUCfs {
		return errors.New("NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted")
	}
	if r.NanoCPUs != 0 {
		nc := si.NumCPU
		if r.NanoCPUs < 0 || r.NanoCPUs > int64(nc)*1e9 {
			return fmt.Errorf("range of CPUs is from 0.01 to %[1]d.00, as there are only %[1]d CPUs available", nc)
		}
	}
	if r.CPUShares > 0 && !si.CPUShares {
		c.warn("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.")
		r.CPUShares = 0
	}
	if (r.CPUPeriod != 0 || r.CPUQuota != 0) && !si.CPUCfs {
		c.warn("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
		r.CPUPeriod = 0
		r.CPUQuota = 0
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return errors.New("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return errors.New("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUPercent > 0 {
		c.warn("linux does not support CPU percent. Percent discarded.")
		r.CPUPercent = 0
	}

	// Cpuset.
	if (r.CpusetCpus != "" || r.CpusetMems != "") && !si.Cpuset {
		c.warn("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
		r.CpusetCpus = ""
		r.CpusetMems = ""
	}
	ok, err := cpusetAvailable(r.CpusetCpus, si.Cpus)
	if err != nil {
		return fmt.Errorf("Invalid value %s for cpuset cpus: %w", r.CpusetCpus, err)
	}
	if !ok {
		return fmt.Errorf("Requested CPUs are not available - requested %s, available: %s", r.CpusetCpus, si.Cpus)
	}
	ok, err = cpusetAvailable(r.CpusetMems, si.Mems)
	if err != nil {
		return fmt.Errorf("Invalid value %s for cpuset mems: %w", r.CpusetMems, err)
	}
	if !ok {
		return fmt.Errorf("Requested memory nodes are not available - requested %s, available: %s", r.CpusetMems, si.Mems)
	}

	// Block IO.
	if r.BlkioWeight > 0 && !si.BlkioWeight {
		c.warn("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
		r.BlkioWeight = 0
	}
	if r.BlkioWeight > 0 && (r.BlkioWeight < 10 || r.BlkioWeight > 1000) {
		return errors.New("Range of blkio weight is from 10 to 1000")
	}
	if r.IOMaximumBandwidth != 0 || r.IOMaximumIOps != 0 {
		return errors.New("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
	}
	if len(r.BlkioWeightDevice) > 0 && !si.BlkioWeightDevice {
		c.warn("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.")
		r.BlkioWeightDevice = []*blkiodev.WeightDevice{}
	}
	if len(r.BlkioDeviceReadBps) > 0 && !si.BlkioReadBpsDevice {
		c.warn("Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.")
		r.BlkioDeviceReadBps = []*blkiodev.ThrottleDevice{}
	}
	if len(r.BlkioDeviceWriteBps) > 0 && !si.BlkioWriteBpsDevice {
		c.warn("Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.")
		r.BlkioDeviceWriteBps = []*blkiodev.ThrottleDevice{}
	}
	if len(r.BlkioDeviceReadIOps) > 0 && !si.BlkioReadIOpsDevice {
		c.warn("Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.")
		r.BlkioDeviceReadIOps = []*blkiodev.ThrottleDevice{}
	}
	if len(r.BlkioDeviceWriteIOps) > 0 && !si.BlkioWriteIOpsDevice {
		c.warn("Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.")
		r.BlkioDeviceWriteIOps = []*blkiodev.ThrottleDevice{}
	}
	return nil
}

// validateNetworkingConfig checks every endpoint: a nil one, and the IPAM addresses' families
// (an IPv4 address that is not v4, an IPv6 address that is v4 or v4-mapped, unspecified or
// zoned addresses). All errors are reported at once, per network, as moby does since API 1.44;
// several endpoints are allowed (moby's router refuses them only below API 1.44).
func validateNetworkingConfig(nc *network.NetworkingConfig) error {
	if nc == nil || len(nc.EndpointsConfig) == 0 {
		return nil
	}
	names := make([]string, 0, len(nc.EndpointsConfig))
	for k := range nc.EndpointsConfig {
		names = append(names, k)
	}
	slices.Sort(names)
	var errs []error
	for _, k := range names {
		ep := nc.EndpointsConfig[k]
		if ep == nil {
			errs = append(errs, fmt.Errorf("invalid config for network %s: EndpointsConfig is nil", k))
			continue
		}
		if ep.IPAMConfig == nil {
			continue
		}
		var epErrs []string
		ipam := ep.IPAMConfig
		if a := ipam.IPv4Address; a.IsValid() {
			switch {
			case !a.Is4():
				epErrs = append(epErrs, fmt.Sprintf("invalid IPv4 address: %s", a))
			case a.IsUnspecified():
				epErrs = append(epErrs, fmt.Sprintf("invalid IPv4 address: %s", a))
			}
		}
		if a := ipam.IPv6Address; a.IsValid() {
			switch {
			case !a.Is6() || a.Is4In6():
				epErrs = append(epErrs, fmt.Sprintf("invalid IPv6 address: %s", a))
			case a.IsUnspecified() || a.Zone() != "":
				epErrs = append(epErrs, fmt.Sprintf("invalid IPv6 address: %s", a))
			}
		}
		for _, a := range ipam.LinkLocalIPs {
			if !a.IsValid() || a.IsUnspecified() || a.Zone() != "" {
				epErrs = append(epErrs, fmt.Sprintf("invalid link-local IP address: %s", a))
			}
		}
		if len(epErrs) > 0 {
			errs = append(errs, fmt.Errorf("invalid config for network %s: invalid endpoint settings:\n%s", k, strings.Join(epErrs, "\n")))
		}
	}
	return errors.Join(errs...)
}

// Mounts, as moby's Linux mount parser validates them.

type mountConfigError struct {
	typ mount.Type
	err error
}

func (e *mountConfigError) Error() string {
	return fmt.Sprintf("invalid mount config for type %q: %v", e.typ, e.err)
}

func (e *mountConfigError) Unwrap() error { return e.err }

func validateNotRoot(p string) error {
	if path.Clean(strings.ReplaceAll(p, `\`, `/`)) == "/" {
		return errors.New("invalid specification: destination can't be '/'")
	}
	return nil
}

func validateAbsolute(p string) error {
	p = strings.ReplaceAll(p, `\`, `/`)
	if path.IsAbs(p) {
		return nil
	}
	return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", p)
}

// validateTarget is moby's check of a tmpfs destination.
func validateTarget(p string) error {
	if err := validateNotRoot(p); err != nil {
		return err
	}
	return validateAbsolute(p)
}

var propagations = map[mount.Propagation]bool{
	mount.PropagationPrivate: true, mount.PropagationRPrivate: true,
	mount.PropagationSlave: true, mount.PropagationRSlave: true,
	mount.PropagationShared: true, mount.PropagationRShared: true,
}

func validateMount(m *mount.Mount, checkSource bool) error {
	wrap := func(err error) error { return &mountConfigError{typ: m.Type, err: err} }
	if m.Target == "" {
		return wrap(errors.New("field Target must not be empty"))
	}
	if err := validateTarget(m.Target); err != nil {
		return wrap(err)
	}
	extra := func(name string) error { return wrap(fmt.Errorf("field %s must not be specified", name)) }
	switch m.Type {
	case mount.TypeBind:
		if m.Source == "" {
			return wrap(errors.New("field Source must not be empty"))
		}
		if o := m.BindOptions; o != nil && o.Propagation != "" && !propagations[o.Propagation] {
			return wrap(fmt.Errorf("invalid propagation mode: %s", o.Propagation))
		}
		if m.VolumeOptions != nil {
			return extra("VolumeOptions")
		}
		if m.ImageOptions != nil {
			return extra("ImageOptions")
		}
		if err := validateAbsolute(m.Source); err != nil {
			return wrap(err)
		}
		if checkSource {
			_, err := osStat(m.Source)
			if err != nil && !isNotExist(err) {
				return wrap(err)
			}
			create := m.BindOptions != nil && m.BindOptions.CreateMountpoint
			if err != nil && !create {
				return wrap(fmt.Errorf("bind source path does not exist: %s", m.Source))
			}
		}
	case mount.TypeVolume:
		if m.BindOptions != nil {
			return extra("BindOptions")
		}
		if m.ImageOptions != nil {
			return extra("ImageOptions")
		}
		anonymous := m.Source == ""
		if o := m.VolumeOptions; o != nil && o.Subpath != "" {
			if anonymous {
				return wrap(errors.New("must not set Subpath when using anonymous volumes"))
			}
			if !filepath.IsLocal(o.Subpath) {
				return wrap(errors.New("subpath must be a relative path within the volume"))
			}
		}
		if m.ReadOnly && anonymous {
			return wrap(errors.New("must not set ReadOnly mode when using anonymous volumes"))
		}
	case mount.TypeTmpfs:
		if m.BindOptions != nil {
			return extra("BindOptions")
		}
		if m.ImageOptions != nil {
			return extra("ImageOptions")
		}
		if m.Source != "" {
			return extra("Source")
		}
		if o := m.TmpfsOptions; o != nil {
			for _, opt := range o.Options {
				if len(opt) < 1 || len(opt) > 2 {
					return wrap(errors.New("invalid option array length"))
				}
				if opt[0] != "exec" && opt[0] != "noexec" {
					return wrap(errors.New("invalid option: " + opt[0]))
				}
			}
		}
	case mount.TypeImage:
		if m.BindOptions != nil {
			return extra("BindOptions")
		}
		if m.VolumeOptions != nil {
			return extra("VolumeOptions")
		}
		if m.Source == "" {
			return wrap(errors.New("field Source must not be empty"))
		}
		if o := m.ImageOptions; o != nil && o.Subpath != "" && !filepath.IsLocal(o.Subpath) {
			return wrap(errors.New("subpath must be a relative path within the volume"))
		}
	default:
		return wrap(errors.New("mount type unknown"))
	}
	return nil
}

// Binds ("src:dst[:mode]"), parsed as moby's registerMountPoints parses them at create.

var rwModes = map[string]bool{"rw": true, "ro": true}
var labelModes = map[string]bool{"z": true, "Z": true}
var consistencyModes = map[string]bool{"consistent": true, "cached": true, "delegated": true}

func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	var rw, lbl, prop, cp, cons int
	for _, o := range strings.Split(mode, ",") {
		switch {
		case rwModes[o]:
			rw++
		case labelModes[o]:
			lbl++
		case propagations[mount.Propagation(o)]:
			prop++
		case o == "nocopy":
			cp++
		case consistencyModes[o]:
			cons++
		default:
			return false
		}
	}
	return rw <= 1 && lbl <= 1 && prop <= 1 && cp <= 1 && cons <= 1
}

// parseBind returns the mount a bind string stands for, or moby's error for it.
func parseBind(raw string) (mount.Mount, error) {
	bad := fmt.Errorf("invalid volume specification: '%s'", raw)
	arr := strings.SplitN(raw, ":", 4)
	if arr[0] == "" {
		return mount.Mount{}, bad
	}
	var m mount.Mount
	var mode string
	switch len(arr) {
	case 1:
		m.Target = arr[0]
	case 2:
		if validMode(arr[1]) {
			return mount.Mount{}, bad
		}
		m.Source, m.Target = arr[0], arr[1]
	case 3:
		m.Source, m.Target, mode = arr[0], arr[1], arr[2]
	default:
		return mount.Mount{}, bad
	}
	if !validMode(mode) {
		return mount.Mount{}, fmt.Errorf("invalid mode: %v", mode)
	}
	if path.IsAbs(m.Source) {
		m.Type = mount.TypeBind
	} else {
		m.Type = mount.TypeVolume
	}
	for _, o := range strings.Split(mode, ",") {
		if o == "ro" {
			m.ReadOnly = true
		}
		if o == "nocopy" {
			m.VolumeOptions = &mount.VolumeOptions{NoCopy: true}
		}
		if propagations[mount.Propagation(o)] {
			m.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(o)}
		}
	}
	if err := validateMount(&m, false); err != nil {
		return mount.Mount{}, fmt.Errorf("%v: %w", bad, err)
	}
	return m, nil
}

func (c *checker) validateBinds() error {
	hc := c.hc
	targets := map[string]bool{}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return err
		}
		dest := path.Clean(m.Target)
		if _, tmpfs := hc.Tmpfs[dest]; targets[dest] || tmpfs {
			return errors.New("Duplicate mount point: " + dest)
		}
		targets[dest] = true
	}
	for _, m := range hc.Mounts {
		if targets[path.Clean(m.Target)] {
			return errors.New("Duplicate mount point: " + m.Target)
		}
	}
	return nil
}
