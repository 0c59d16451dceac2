// Package createflags parses the flags of `docker create` into a Slipway create request,
// for the `slipway create` command.
//
// AddFlags registers docker's create flags, with docker's names, shorthands, defaults and
// help texts, on a pflag.FlagSet (a cobra command's Flags()). After the flag set has parsed
// the command line, Request builds the spec.CreateRequest with the same Config, HostConfig,
// NetworkingConfig and platform that the docker CLI 28 would send in POST /containers/create
// for that command line:
//
//	fs := cmd.Flags()
//	opts := createflags.AddFlags(fs)
//	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return createflags.FlagError(err) })
//	...
//	req, err := opts.Request(fs, args[0], args[1:])
//
// Values that pflag parses itself (integers, durations, sizes, and each repeatable flag's
// value checks) fail while the flags are parsed, with pflag's message
// `invalid argument "x" for "-m, --memory" flag: ...`; FlagError classes such an error as
// InvalidArgument. Request reports the rest with the CLI's messages, also as InvalidArgument.
//
// Request reads files named by --env-file, --label-file and --security-opt seccomp=FILE,
// and the process environment for -e NAME; it touches nothing else on the host. Flags that
// need a running daemon (--pull, --quiet, --gpus, --use-api-socket, content trust) are not
// registered.
package createflags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Options holds the values of the create flags registered by AddFlags. The zero value is
// not usable; get one from AddFlags.
type Options struct {
	name     string
	platform string
	cidFile  string

	attach, volumes, tmpfs, links, aliases, linkLocalIPs listValue
	env, envFile, labels, labelFile, deviceCgroupRules   listValue
	devices, publish, expose, dns, dnsSearch, dnsOptions listValue
	extraHosts, volumesFrom, capAdd, capDrop, groupAdd   listValue
	securityOpt, storageOpt, logOpts                     listValue
	sysctls, annotations                                 mapValue
	ulimits                                              ulimitValue
	mounts                                               mountValue
	network                                              networkValue
	memory, memoryReservation, kernelMemory, shmSize     memBytes
	memorySwap                                           memSwapBytes
	cpus                                                 nanoCPUs
	privileged, publishAll, stdin, tty, oomKillDisable   bool
	readonlyRootfs, autoRemove, init, noHealthcheck      bool
	pidMode, utsMode, usernsMode, cgroupnsMode, ipcMode  string
	entrypoint, hostname, domainname, user, workingDir   string
	macAddress, ipv4, ipv6, restartPolicy, logDriver     string
	cgroupParent, volumeDriver, stopSignal, isolation    string
	runtime, cpusetCpus, cpusetMems, healthCmd           string
	oomScoreAdj, stopTimeout, healthRetries              int
	cpuShares, cpuPeriod, cpuQuota, cpuRTPeriod          int64
	cpuRTRuntime, swappiness, pidsLimit                  int64
	blkioWeight                                          uint16
	healthInterval, healthTimeout, healthStartPeriod     time.Duration
	healthStartInterval                                  time.Duration
}

// AddFlags registers the create flags on fs and returns the Options they fill. It also
// stops fs at the first argument that is not a flag (the image), as docker create does,
// and registers --help without a shorthand, because -h is --hostname.
func AddFlags(fs *pflag.FlagSet) *Options {
	o := &Options{
		attach:            listValue{check: checkAttach},
		deviceCgroupRules: listValue{check: checkDeviceCgroupRule},
		dns:               listValue{check: checkIP},
		dnsSearch:         listValue{check: checkDNSSearch},
		env:               listValue{check: checkEnv},
		extraHosts:        listValue{check: checkExtraHost},
		labels:            listValue{check: checkLabel},
		links:             listValue{check: checkLink},
		sysctls:           mapValue{values: map[string]string{}, check: checkSysctl},
		annotations:       mapValue{values: map[string]string{}},
		ulimits:           ulimitValue{values: map[string]*container.Ulimit{}},
	}
	fs.SetInterspersed(false)

	// Of docker create itself.
	fs.StringVar(&o.name, "name", "", "Assign a name to the container")
	fs.StringVar(&o.platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable")
	fs.Bool("help", false, "Print usage")

	// General purpose.
	fs.VarP(&o.attach, "attach", "a", "Attach to STDIN, STDOUT or STDERR")
	fs.Var(&o.deviceCgroupRules, "device-cgroup-rule", "Add a rule to the cgroup allowed devices list")
	fs.Var(&o.devices, "device", "Add a host device to the container")
	fs.VarP(&o.env, "env", "e", "Set environment variables")
	fs.Var(&o.envFile, "env-file", "Read in a file of environment variables")
	fs.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fs.Var(&o.groupAdd, "group-add", "Add additional groups to join")
	fs.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	fs.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	fs.BoolVarP(&o.stdin, "interactive", "i", false, "Keep STDIN open even if not attached")
	fs.VarP(&o.labels, "label", "l", "Set meta data on a container")
	fs.Var(&o.labelFile, "label-file", "Read in a line delimited file of labels")
	fs.BoolVar(&o.readonlyRootfs, "read-only", false, "Mount the container's root filesystem as read only")
	fs.StringVar(&o.restartPolicy, "restart", string(container.RestartPolicyDisabled), "Restart policy to apply when a container exits")
	fs.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	fs.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fs.Var(&o.sysctls, "sysctl", "Sysctl options")
	fs.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.Var(&o.ulimits, "ulimit", "Ulimit options")
	fs.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVarP(&o.workingDir, "workdir", "w", "", "Working directory inside the container")
	fs.BoolVar(&o.autoRemove, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")

	// Security.
	fs.Var(&o.capAdd, "cap-add", "Add Linux capabilities")
	fs.Var(&o.capDrop, "cap-drop", "Drop Linux capabilities")
	fs.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	fs.Var(&o.securityOpt, "security-opt", "Security Options")
	fs.StringVar(&o.usernsMode, "userns", "", "User namespace to use")
	fs.StringVar(&o.cgroupnsMode, "cgroupns", "", `Cgroup namespace to use (host|private)
'host':    Run the container in the Docker host's cgroup namespace
'private': Run the container in its own private cgroup namespace
'':        Use the cgroup namespace as configured by the
           default-cgroupns-mode option on the daemon (default)`)

	// Network and port publishing.
	fs.Var(&o.extraHosts, "add-host", "Add a custom host-to-IP mapping (host:ip)")
	fs.Var(&o.dns, "dns", "Set custom DNS servers")
	fs.Var(&o.dnsOptions, "dns-opt", "Set DNS options")
	fs.Var(&o.dnsOptions, "dns-option", "Set DNS options")
	_ = fs.MarkHidden("dns-opt")
	fs.Var(&o.dnsSearch, "dns-search", "Set custom DNS search domains")
	fs.Var(&o.expose, "expose", "Expose a port or a range of ports")
	fs.StringVar(&o.ipv4, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fs.StringVar(&o.ipv6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fs.Var(&o.links, "link", "Add link to another container")
	fs.Var(&o.linkLocalIPs, "link-local-ip", "Container IPv4/IPv6 link-local addresses")
	fs.StringVar(&o.macAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fs.VarP(&o.publish, "publish", "p", "Publish a container's port(s) to the host")
	fs.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fs.Var(&o.network, "net", "Connect a container to a network")
	fs.Var(&o.network, "network", "Connect a container to a network")
	_ = fs.MarkHidden("net")
	fs.Var(&o.aliases, "net-alias", "Add network-scoped alias for the container")
	fs.Var(&o.aliases, "network-alias", "Add network-scoped alias for the container")
	_ = fs.MarkHidden("net-alias")

	// Logging and storage.
	fs.StringVar(&o.logDriver, "log-driver", "", "Logging driver for the container")
	fs.StringVar(&o.volumeDriver, "volume-driver", "", "Optional volume driver for the container")
	fs.Var(&o.logOpts, "log-opt", "Log driver options")
	fs.Var(&o.storageOpt, "storage-opt", "Storage driver options for the container")
	fs.Var(&o.tmpfs, "tmpfs", "Mount a tmpfs directory")
	fs.Var(&o.volumesFrom, "volumes-from", "Mount volumes from the specified container(s)")
	fs.VarP(&o.volumes, "volume", "v", "Bind mount a volume")
	fs.Var(&o.mounts, "mount", "Attach a filesystem mount to the container")

	// Health-checking.
	fs.StringVar(&o.healthCmd, "health-cmd", "", "Command to run to check health")
	fs.DurationVar(&o.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fs.IntVar(&o.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	fs.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")

	// Resource management.
	fs.Uint16Var(&o.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fs.StringVar(&o.cidFile, "cidfile", "", "Write the container ID to the file")
	fs.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fs.Int64Var(&o.cpuRTPeriod, "cpu-rt-period", 0, "Limit CPU real-time period in microseconds")
	fs.Int64Var(&o.cpuRTRuntime, "cpu-rt-runtime", 0, "Limit CPU real-time runtime in microseconds")
	fs.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Var(&o.cpus, "cpus", "Number of CPUs")
	fs.Var(&o.kernelMemory, "kernel-memory", "Kernel memory limit")
	// The Engine API Slipway speaks has no KernelMemory field any more (the docker CLI 29
	// deprecates the flag the same way): the value is parsed and then ignored.
	_ = fs.MarkDeprecated("kernel-memory", "and no longer supported by the kernel")
	fs.VarP(&o.memory, "memory", "m", "Memory limit")
	fs.Var(&o.memoryReservation, "memory-reservation", "Memory soft limit")
	fs.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fs.Int64Var(&o.swappiness, "memory-swappiness", -1, "Tune container memory swappiness (0 to 100)")
	fs.BoolVar(&o.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	fs.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	fs.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")

	// Low-level execution (cgroups, namespaces, ...).
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")
	fs.StringVar(&o.ipcMode, "ipc", "", "IPC mode to use")
	fs.StringVar(&o.isolation, "isolation", "", "Container isolation technology")
	fs.StringVar(&o.pidMode, "pid", "", "PID namespace to use")
	fs.Var(&o.shmSize, "shm-size", "Size of /dev/shm")
	fs.StringVar(&o.utsMode, "uts", "", "UTS namespace to use")
	fs.StringVar(&o.runtime, "runtime", "", "Runtime to use for this container")
	fs.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fs.Var(&o.annotations, "annotation", "Add an annotation to the container (passed through to the OCI runtime)")
	return o
}

// CIDFile is the --cidfile value: the file the command writes the new container's ID to.
func (o *Options) CIDFile() string { return o.cidFile }

// FlagError classes an error from parsing the flag set (pflag's `invalid argument ...`,
// `unknown flag: --x`) as InvalidArgument, keeping its message. A nil error stays nil. Use
// it as the cobra command's flag error function.
func FlagError(err error) error { return errdefs.InvalidArgument(err) }

// Request builds the create request for image and cmd (the arguments after the image) from
// the flags fs has parsed. fs must be the flag set given to AddFlags. Every error is
// InvalidArgument.
func (o *Options) Request(fs *pflag.FlagSet, image string, cmd []string) (*spec.CreateRequest, error) {
	req, err := o.request(fs, image, cmd)
	if err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	return req, nil
}

func (o *Options) request(fs *pflag.FlagSet, image string, cmd []string) (*spec.CreateRequest, error) {
	if o.macAddress != "" {
		if _, err := net.ParseMAC(strings.TrimSpace(o.macAddress)); err != nil {
			return nil, fmt.Errorf("%s is not a valid mac address", o.macAddress)
		}
	}
	attachStdin := o.attach.has("stdin") || o.stdin
	attachStdout, attachStderr := o.attach.has("stdout"), o.attach.has("stderr")
	if len(o.attach.values) == 0 {
		attachStdout, attachStderr = true, true
	}

	if o.swappiness != -1 && (o.swappiness < 0 || o.swappiness > 100) {
		return nil, fmt.Errorf("invalid value: %d. Valid memory swappiness range is 0-100", o.swappiness)
	}

	binds, volumes, err := o.binds()
	if err != nil {
		return nil, err
	}

	tmpfs := make(map[string]string, len(o.tmpfs.values))
	for _, t := range o.tmpfs.values {
		k, v, _ := strings.Cut(t, ":")
		tmpfs[k] = v
	}

	var runCmd, entrypoint []string
	if len(cmd) > 0 {
		runCmd = append([]string(nil), cmd...)
	}
	if o.entrypoint != "" {
		entrypoint = []string{o.entrypoint}
	} else if fs.Changed("entrypoint") {
		// --entrypoint= resets the image's entrypoint.
		entrypoint = []string{""}
	}

	ports, portBindings, err := parsePublish(o.publish.values)
	if err != nil {
		return nil, err
	}
	if err := addExposed(ports, o.expose.values); err != nil {
		return nil, err
	}

	devices, deviceRequests, err := parseDevices(o.devices.values)
	if err != nil {
		return nil, err
	}

	env, err := o.environment()
	if err != nil {
		return nil, err
	}
	labels, err := readKVFiles(o.labelFile.values, nil)
	if err != nil {
		return nil, err
	}
	labels = append(labels, o.labels.values...)

	pidMode := container.PidMode(o.pidMode)
	if !pidMode.Valid() {
		return nil, errors.New("--pid: invalid PID mode")
	}
	utsMode := container.UTSMode(o.utsMode)
	if !utsMode.Valid() {
		return nil, errors.New("--uts: invalid UTS mode")
	}
	usernsMode := container.UsernsMode(o.usernsMode)
	if !usernsMode.Valid() {
		return nil, errors.New("--userns: invalid USER mode")
	}
	cgroupnsMode := container.CgroupnsMode(o.cgroupnsMode)
	if !cgroupnsMode.Valid() {
		return nil, errors.New("--cgroupns: invalid CGROUP mode")
	}

	restart, err := parseRestartPolicy(o.restartPolicy)
	if err != nil {
		return nil, err
	}

	if o.logDriver == "none" && len(o.logOpts.values) > 0 {
		return nil, fmt.Errorf("invalid logging opts for driver %s", o.logDriver)
	}
	logOpts := kvMap(o.logOpts.values)

	securityOpt, err := parseSecurityOpts(o.securityOpt.values)
	if err != nil {
		return nil, err
	}
	securityOpt, maskedPaths, readonlyPaths := systemPaths(securityOpt)

	storageOpt := make(map[string]string, len(o.storageOpt.values))
	for _, s := range o.storageOpt.values {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, errors.New("invalid storage option")
		}
		storageOpt[k] = v
	}

	health, err := o.healthcheck()
	if err != nil {
		return nil, err
	}

	dns := make([]netip.Addr, 0, len(o.dns.values))
	for _, s := range o.dns.values {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("IP address is not correctly formatted: %s", s)
		}
		dns = append(dns, ip)
	}

	swappiness, oomKillDisable, pidsLimit := o.swappiness, o.oomKillDisable, o.pidsLimit
	resources := container.Resources{
		CgroupParent:       o.cgroupParent,
		Memory:             int64(o.memory),
		MemoryReservation:  int64(o.memoryReservation),
		MemorySwap:         int64(o.memorySwap),
		MemorySwappiness:   &swappiness,
		OomKillDisable:     &oomKillDisable,
		NanoCPUs:           int64(o.cpus),
		CPUShares:          o.cpuShares,
		CPUPeriod:          o.cpuPeriod,
		CPUQuota:           o.cpuQuota,
		CPURealtimePeriod:  o.cpuRTPeriod,
		CPURealtimeRuntime: o.cpuRTRuntime,
		CpusetCpus:         o.cpusetCpus,
		CpusetMems:         o.cpusetMems,
		PidsLimit:          &pidsLimit,
		BlkioWeight:        o.blkioWeight,
		// The docker CLI sends the device weights and throttles as lists, empty without
		// their flags (which Slipway does not offer): [] rather than null, as inspect shows.
		BlkioWeightDevice:    []*blkiodev.WeightDevice{},
		BlkioDeviceReadBps:   []*blkiodev.ThrottleDevice{},
		BlkioDeviceWriteBps:  []*blkiodev.ThrottleDevice{},
		BlkioDeviceReadIOps:  []*blkiodev.ThrottleDevice{},
		BlkioDeviceWriteIOps: []*blkiodev.ThrottleDevice{},
		Ulimits:              o.ulimits.list(),
		DeviceCgroupRules:    cloneStrings(o.deviceCgroupRules.values),
		Devices:              devices,
		DeviceRequests:       deviceRequests,
	}

	config := &container.Config{
		Hostname:     o.hostname,
		Domainname:   o.domainname,
		ExposedPorts: ports,
		User:         o.user,
		Tty:          o.tty,
		OpenStdin:    o.stdin,
		AttachStdin:  attachStdin,
		AttachStdout: attachStdout,
		AttachStderr: attachStderr,
		Env:          env,
		Cmd:          runCmd,
		Image:        image,
		Volumes:      volumes,
		Entrypoint:   entrypoint,
		WorkingDir:   o.workingDir,
		Labels:       kvMap(labels),
		StopSignal:   o.stopSignal,
		Healthcheck:  health,
	}
	if fs.Changed("stop-timeout") {
		t := o.stopTimeout
		config.StopTimeout = &t
	}
	// With stdin attached, stdin closes when the attached client leaves.
	config.StdinOnce = config.OpenStdin && config.AttachStdin

	var mounts []mount.Mount
	if len(o.mounts.values) > 0 {
		mounts = append(mounts, o.mounts.values...)
	}
	hostConfig := &container.HostConfig{
		Binds:           binds,
		ContainerIDFile: o.cidFile,
		OomScoreAdj:     o.oomScoreAdj,
		AutoRemove:      o.autoRemove,
		Privileged:      o.privileged,
		PortBindings:    portBindings,
		Links:           cloneStrings(o.links.values),
		PublishAllPorts: o.publishAll,
		DNS:             dns,
		DNSSearch:       cloneStrings(o.dnsSearch.orEmpty()),
		DNSOptions:      cloneStrings(o.dnsOptions.orEmpty()),
		ExtraHosts:      cloneStrings(o.extraHosts.values),
		VolumesFrom:     cloneStrings(o.volumesFrom.values),
		IpcMode:         container.IpcMode(o.ipcMode),
		NetworkMode:     container.NetworkMode(o.network.mode()),
		PidMode:         pidMode,
		UTSMode:         utsMode,
		UsernsMode:      usernsMode,
		CgroupnsMode:    cgroupnsMode,
		CapAdd:          cloneStrings(o.capAdd.values),
		CapDrop:         cloneStrings(o.capDrop.values),
		GroupAdd:        cloneStrings(o.groupAdd.values),
		RestartPolicy:   restart,
		SecurityOpt:     securityOpt,
		StorageOpt:      storageOpt,
		ReadonlyRootfs:  o.readonlyRootfs,
		LogConfig:       container.LogConfig{Type: o.logDriver, Config: logOpts},
		VolumeDriver:    o.volumeDriver,
		Isolation:       container.Isolation(o.isolation),
		ShmSize:         int64(o.shmSize),
		Resources:       resources,
		Tmpfs:           tmpfs,
		Sysctls:         cloneMap(o.sysctls.values),
		Runtime:         o.runtime,
		Mounts:          mounts,
		MaskedPaths:     maskedPaths,
		ReadonlyPaths:   readonlyPaths,
		Annotations:     cloneMap(o.annotations.values),
	}
	if o.autoRemove && !hostConfig.RestartPolicy.IsNone() {
		return nil, errors.New("conflicting options: cannot specify both --restart and --rm")
	}
	if fs.Changed("init") {
		v := o.init
		hostConfig.Init = &v
	}

	eps, err := o.endpoints()
	if err != nil {
		return nil, err
	}

	req := &spec.CreateRequest{
		Name:             o.name,
		Config:           config,
		HostConfig:       hostConfig,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: eps},
	}
	if o.platform != "" {
		p, err := platforms.Parse(o.platform)
		if err != nil {
			return nil, fmt.Errorf("error parsing specified platform: %w", err)
		}
		req.Platform = &p
	}
	return req, nil
}

// binds splits the -v values into HostConfig.Binds (those naming a source: a host path or
// a volume name) and Config.Volumes (anonymous volumes), in command-line order without
// duplicates. A relative host path starting with "." is made absolute.
func (o *Options) binds() ([]string, map[string]struct{}, error) {
	var binds []string
	volumes := map[string]struct{}{}
	seen := map[string]bool{}
	for _, v := range o.volumes.values {
		if seen[v] {
			continue
		}
		seen[v] = true
		parsed, err := parseVolumeSpec(v)
		if err != nil {
			return nil, nil, err
		}
		if parsed.source == "" {
			volumes[v] = struct{}{}
			continue
		}
		bind := v
		if parsed.bind {
			if host, rest, ok := strings.Cut(v, ":"); ok {
				if !filepath.IsAbs(host) && strings.HasPrefix(host, ".") {
					if abs, err := filepath.Abs(host); err == nil {
						host = abs
					}
				}
				bind = host + ":" + rest
			}
		}
		binds = append(binds, bind)
	}
	return binds, volumes, nil
}

// environment is the container's Env: the --env-file entries, then the -e entries. As in the
// docker CLI, a -e NAME given more than once is sent once, with its last value; Slipway keeps
// the -e entries in the order they were first given (the CLI sends them in map order).
func (o *Options) environment() ([]string, error) {
	env, err := readKVFiles(o.envFile.values, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	var flags []string
	for _, e := range o.env.values {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := index[k]; ok {
			flags[i] = e
			continue
		}
		index[k] = len(flags)
		flags = append(flags, e)
	}
	env = append(env, flags...)
	if len(env) == 0 {
		return nil, nil
	}
	return env, nil
}

// healthcheck builds Config.Healthcheck from the --health-* flags, or nil when none is set.
func (o *Options) healthcheck() (*container.HealthConfig, error) {
	have := o.healthCmd != "" || o.healthInterval != 0 || o.healthTimeout != 0 ||
		o.healthStartPeriod != 0 || o.healthRetries != 0 || o.healthStartInterval != 0
	if o.noHealthcheck {
		if have {
			return nil, errors.New("--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !have {
		return nil, nil
	}
	switch {
	case o.healthInterval < 0:
		return nil, errors.New("--health-interval cannot be negative")
	case o.healthTimeout < 0:
		return nil, errors.New("--health-timeout cannot be negative")
	case o.healthRetries < 0:
		return nil, errors.New("--health-retries cannot be negative")
	case o.healthStartPeriod < 0:
		return nil, errors.New("--health-start-period cannot be negative")
	case o.healthStartInterval < 0:
		return nil, errors.New("--health-start-interval cannot be negative")
	}
	var test []string
	if o.healthCmd != "" {
		test = []string{"CMD-SHELL", o.healthCmd}
	}
	return &container.HealthConfig{
		Test:          test,
		Interval:      o.healthInterval,
		Timeout:       o.healthTimeout,
		StartPeriod:   o.healthStartPeriod,
		StartInterval: o.healthStartInterval,
		Retries:       o.healthRetries,
	}, nil
}

// parseRestartPolicy parses --restart NAME[:MAX-RETRIES]. The daemon checks the name.
func parseRestartPolicy(s string) (container.RestartPolicy, error) {
	if s == "" {
		return container.RestartPolicy{}, nil
	}
	name, count, hasColon := strings.Cut(s, ":")
	if hasColon && name == "" {
		return container.RestartPolicy{}, errors.New("invalid restart policy format: no policy provided before colon")
	}
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return container.RestartPolicy{}, errors.New("invalid restart policy format: maximum retry count must be an integer")
		}
		p.MaximumRetryCount = n
	}
	return p, nil
}

const (
	seccompBuiltin    = "builtin"
	seccompUnconfined = "unconfined"
)

// parseSecurityOpts checks the --security-opt values (KEY=VALUE or KEY:VALUE, or
// no-new-privileges alone) and replaces seccomp=FILE by seccomp=<the file's JSON, compacted>,
// as the CLI sends a local profile's content rather than its path.
func parseSecurityOpts(opts []string) ([]string, error) {
	if opts == nil {
		return nil, nil
	}
	out := make([]string, len(opts))
	copy(out, opts)
	for i, opt := range out {
		k, v, ok := strings.Cut(opt, "=")
		if !ok && k != "no-new-privileges" {
			k, v, ok = strings.Cut(opt, ":")
		}
		if (!ok || v == "") && k != "no-new-privileges" {
			return nil, fmt.Errorf("Invalid --security-opt: %q", opt) //nolint:staticcheck // the docker CLI's text
		}
		if k != "seccomp" || v == seccompBuiltin || v == seccompUnconfined {
			continue
		}
		data, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("opening seccomp profile (%s) failed: %w", v, err)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, data); err != nil {
			return nil, fmt.Errorf("compacting json for seccomp profile (%s) failed: %w", v, err)
		}
		out[i] = "seccomp=" + b.String()
	}
	return out, nil
}

// systemPaths removes systempaths=unconfined, which the CLI handles itself by sending empty
// MaskedPaths and ReadonlyPaths (no masking) instead of null (the daemon's defaults).
func systemPaths(opts []string) (filtered, masked, readonly []string) {
	for _, opt := range opts {
		if opt == "systempaths=unconfined" {
			masked, readonly = []string{}, []string{}
			continue
		}
		filtered = append(filtered, opt)
	}
	if filtered == nil && opts != nil {
		filtered = []string{}
	}
	return filtered, masked, readonly
}

// parseDevices turns --device values into device mappings ([host:]container[:mode], for a
// Linux daemon) and one CDI device request for the fully qualified CDI names
// (vendor.com/class=name). The mappings are a non-nil slice.
func parseDevices(values []string) ([]container.DeviceMapping, []container.DeviceRequest, error) {
	mappings := []container.DeviceMapping{}
	var cdi []string
	for _, d := range values {
		if isCDIName(d) {
			cdi = append(cdi, d)
			continue
		}
		v, err := checkDevicePath(d)
		if err != nil {
			return nil, nil, err
		}
		parts := strings.SplitN(v, ":", 4)
		var src, dst string
		perms := "rwm"
		switch len(parts) {
		case 3:
			perms = parts[2]
			fallthrough
		case 2:
			if validDeviceMode(parts[1]) {
				perms = parts[1]
			} else {
				dst = parts[1]
			}
			fallthrough
		case 1:
			src = parts[0]
		default:
			return nil, nil, fmt.Errorf("invalid device specification: %s", v)
		}
		if dst == "" {
			dst = src
		}
		mappings = append(mappings, container.DeviceMapping{PathOnHost: src, PathInContainer: dst, CgroupPermissions: perms})
	}
	var requests []container.DeviceRequest
	if len(cdi) > 0 {
		requests = []container.DeviceRequest{{Driver: "cdi", DeviceIDs: cdi}}
	}
	return mappings, requests, nil
}

// kvMap turns KEY=VALUE strings into a map (a bare KEY maps to ""); the map is never nil.
func kvMap(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for _, v := range values {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return m
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append(make([]string, 0, len(s)), s...)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
