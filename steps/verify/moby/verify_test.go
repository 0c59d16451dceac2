package moby

import (
	"context"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// fullHost is a cgroup v1 host with every controller, 2 CPUs and one memory node.
func fullHost() *SysInfo {
	return &SysInfo{
		MemoryLimit: true, SwapLimit: true, MemoryReservation: true, OomKillDisable: true, MemorySwappiness: true,
		CPUShares: true, CPUCfs: true, CPURealtime: true,
		BlkioWeight: true, BlkioWeightDevice: true, BlkioReadBpsDevice: true, BlkioWriteBpsDevice: true,
		BlkioReadIOpsDevice: true, BlkioWriteIOpsDevice: true,
		Cpuset: true, Cpus: "0-1", Mems: "0", PidsLimit: true, CgroupNamespaces: true, NumCPU: 2,
	}
}

// v2Host is a cgroup v2 host as moby sees one: no swappiness, no OOM control.
func v2Host() *SysInfo {
	si := fullHost()
	si.CgroupUnified, si.MemorySwappiness, si.OomKillDisable, si.CPURealtime = true, false, false, false
	return si
}

func i64(v int64) *int64 { return &v }
func bptr(v bool) *bool  { return &v }

type tcase struct {
	name    string
	si      *SysInfo
	opts    []Option
	req     spec.CreateRequest
	wantErr string
	check   func(t *testing.T, v *spec.Verified)
}

func cfg() *container.Config { return &container.Config{Image: "busybox"} }

func hc(f func(h *container.HostConfig)) *container.HostConfig {
	h := &container.HostConfig{}
	f(h)
	return h
}

func wantWarnings(want ...string) func(t *testing.T, v *spec.Verified) {
	return func(t *testing.T, v *spec.Verified) {
		t.Helper()
		if !slices.Equal(v.Warnings, want) {
			t.Errorf("warnings = %q, want %q", v.Warnings, want)
		}
	}
}

func TestVerify(t *testing.T) {
	tmp := t.TempDir()
	cases := []tcase{
		{name: "nil config", req: spec.CreateRequest{}, wantErr: "config cannot be empty in order to create a container"},
		{name: "name ok, slash stripped", req: spec.CreateRequest{Name: "/web-1.a_b", Config: cfg()},
			check: func(t *testing.T, v *spec.Verified) {
				if v.Name != "web-1.a_b" {
					t.Errorf("Name = %q", v.Name)
				}
			}},
		{name: "name empty generates", req: spec.CreateRequest{Config: cfg()}, check: func(t *testing.T, v *spec.Verified) {
			if v.Name != "" {
				t.Errorf("Name = %q", v.Name)
			}
		}},
		{name: "name one char", req: spec.CreateRequest{Name: "a", Config: cfg()}, wantErr: "Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},
		{name: "name leading dash", req: spec.CreateRequest{Name: "-ab", Config: cfg()}, wantErr: "Invalid container name (-ab), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},
		{name: "name two slashes", req: spec.CreateRequest{Name: "//ab", Config: cfg()}, wantErr: "Invalid container name (//ab), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},
		{name: "name slash only", req: spec.CreateRequest{Name: "/", Config: cfg()}, wantErr: "Invalid container name (/), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},
		{name: "name with space", req: spec.CreateRequest{Name: "a b", Config: cfg()}, wantErr: "Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},

		// Container config.
		{name: "workdir relative", req: spec.CreateRequest{Config: &container.Config{WorkingDir: "foo"}}, wantErr: "the working directory 'foo' is invalid, it needs to be an absolute path"},
		{name: "workdir cleaned", req: spec.CreateRequest{Config: &container.Config{WorkingDir: "/a/../b/"}}, check: func(t *testing.T, v *spec.Verified) {
			if v.Config.WorkingDir != "/b" {
				t.Errorf("WorkingDir = %q", v.Config.WorkingDir)
			}
		}},
		{name: "stop signal bad", req: spec.CreateRequest{Config: &container.Config{StopSignal: "SIGFOO"}}, wantErr: "invalid signal: SIGFOO"},
		{name: "stop signal zero", req: spec.CreateRequest{Config: &container.Config{StopSignal: "0"}}, wantErr: "invalid signal: 0"},
		{name: "stop signal ok", req: spec.CreateRequest{Config: &container.Config{StopSignal: "SIGUSR1"}}},
		{name: "stop signal numeric", req: spec.CreateRequest{Config: &container.Config{StopSignal: "9"}}},
		{name: "env empty key", req: spec.CreateRequest{Config: &container.Config{Env: []string{"A=1", "=foo"}}}, wantErr: "invalid environment variable: =foo"},
		{name: "env empty", req: spec.CreateRequest{Config: &container.Config{Env: []string{""}}}, wantErr: "invalid environment variable: "},
		{name: "env bare key ok", req: spec.CreateRequest{Config: &container.Config{Env: []string{"FOO"}}}},
		{name: "healthcheck interval", req: spec.CreateRequest{Config: &container.Config{Healthcheck: &container.HealthConfig{Interval: time.Microsecond}}}, wantErr: "Interval in Healthcheck cannot be less than 1ms"},
		{name: "healthcheck timeout", req: spec.CreateRequest{Config: &container.Config{Healthcheck: &container.HealthConfig{Timeout: time.Microsecond}}}, wantErr: "Timeout in Healthcheck cannot be less than 1ms"},
		{name: "healthcheck retries", req: spec.CreateRequest{Config: &container.Config{Healthcheck: &container.HealthConfig{Retries: -1}}}, wantErr: "Retries in Healthcheck cannot be negative"},
		{name: "healthcheck start period", req: spec.CreateRequest{Config: &container.Config{Healthcheck: &container.HealthConfig{StartPeriod: time.Microsecond}}}, wantErr: "StartPeriod in Healthcheck cannot be less than 1ms"},
		{name: "healthcheck start interval", req: spec.CreateRequest{Config: &container.Config{Healthcheck: &container.HealthConfig{StartInterval: time.Microsecond}}}, wantErr: "StartInterval in Healthcheck cannot be less than 1ms"},
		{name: "hostname too long", req: spec.CreateRequest{Config: &container.Config{Hostname: strings.Repeat("h", 65)}}, wantErr: `hostname "` + strings.Repeat("h", 65) + `" is too long (maximum 64 bytes)`},

		// Decoder and router checks.
		{name: "netmode container without name", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "container:" })}, wantErr: "invalid network mode: invalid container format container:<name|id>"},
		{name: "netmode container hostname", req: spec.CreateRequest{Config: &container.Config{Hostname: "h"}, HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "container:x" })}, wantErr: "conflicting options: hostname and the network mode"},
		{name: "netmode container links", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "container:x"; h.Links = []string{"a:b"} })}, wantErr: "conflicting options: container type network can't be used with links. This would result in undefined behavior"},
		{name: "netmode container dns", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.NetworkMode = "container:x"
			h.DNS = []netip.Addr{netip.MustParseAddr("1.1.1.1")}
		})}, wantErr: "conflicting options: dns and the network mode"},
		{name: "netmode container extra hosts", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "container:x"; h.ExtraHosts = []string{"a:1.2.3.4"} })}, wantErr: "conflicting options: custom host-to-IP mapping and the network mode"},
		{name: "netmode container publish all", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "container:x"; h.PublishAllPorts = true })}, wantErr: "conflicting options: port publishing and the container type network mode"},
		{name: "netmode container expose", req: spec.CreateRequest{Config: &container.Config{ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}}, HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "container:x" })}, wantErr: "conflicting options: port exposing and the container type network mode"},
		{name: "uts host hostname", req: spec.CreateRequest{Config: &container.Config{Hostname: "h"}, HostConfig: hc(func(h *container.HostConfig) { h.UTSMode = "host" })}, wantErr: "conflicting options: hostname and the UTS mode"},
		{name: "host network links", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NetworkMode = "host"; h.Links = []string{"a:b"} })}, wantErr: "conflicting options: host type networking can't be used with links. This would result in undefined behavior"},
		{name: "isolation", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Isolation = "hyperv" })}, wantErr: "invalid isolation (hyperv): linux only supports 'default'"},
		{name: "qos bandwidth", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.IOMaximumBandwidth = 1 })}, wantErr: "invalid option: QoS maximum bandwidth configuration is not supported on linux"},
		{name: "realtime unsupported", si: v2Host(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPURealtimePeriod = 1000 })}, wantErr: "kernel does not support CPU real-time scheduler"},
		{name: "realtime runtime above period", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPURealtimePeriod = 1000; h.CPURealtimeRuntime = 2000 })}, wantErr: "cpu real-time runtime cannot be higher than cpu real-time period"},
		{name: "cpu shares negative", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPUShares = -1 })}, wantErr: "invalid CPU shares (-1): value must be a positive integer"},
		{name: "mount bind options on volume", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/d", BindOptions: &mount.BindOptions{}}}
		})}, wantErr: `BindOptions must not be specified on mount type "volume"`},
		{name: "interface sysctl", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Sysctls = map[string]string{"net.ipv6.conf.eth0.forwarding": "1"} })}, wantErr: `interface specific sysctl setting "net.ipv6.conf.eth0.forwarding" must be supplied using driver option 'com.docker.network.endpoint.sysctls'`},
		{name: "namespaced sysctl ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} })}},
		{name: "pids limit zero becomes nil", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.PidsLimit = i64(0) })}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.PidsLimit != nil {
				t.Errorf("PidsLimit = %d, want nil", *v.HostConfig.PidsLimit)
			}
		}},

		// Host config.
		{name: "autoremove restart", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.AutoRemove = true; h.RestartPolicy.Name = "always" })}, wantErr: "can't create 'AutoRemove' container with restart policy"},
		{name: "autoremove restart no ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.AutoRemove = true; h.RestartPolicy.Name = "no" })}},
		{name: "mount target empty", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Mounts = []mount.Mount{{Type: mount.TypeVolume}} })}, wantErr: `invalid mount config for type "volume": field Target must not be empty`},
		{name: "mount bind source empty", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Mounts = []mount.Mount{{Type: mount.TypeBind, Target: "/d"}} })}, wantErr: `invalid mount config for type "bind": field Source must not be empty`},
		{name: "mount bind source missing", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: tmp + "/nope", Target: "/d"}}
		})}, wantErr: `invalid mount config for type "bind": bind source path does not exist: ` + tmp + "/nope"},
		{name: "mount bind source exists", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: tmp, Target: "/d"}}
		})}},
		{name: "mount target relative", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "foo"}} })}, wantErr: `invalid mount config for type "volume": invalid mount path: 'foo' mount path must be absolute`},
		{name: "mount target root", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Target: "/"}} })}, wantErr: `invalid mount config for type "tmpfs": invalid specification: destination can't be '/'`},
		{name: "mount type unknown", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Mounts = []mount.Mount{{Type: "foo", Target: "/d"}} })}, wantErr: `invalid mount config for type "foo": mount type unknown`},
		{name: "mount anonymous readonly", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/d", ReadOnly: true}}
		})}, wantErr: `invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes`},
		{name: "mount image warns", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeImage, Source: "busybox", Target: "/d"}}
		})},
			si: func() *SysInfo { s := fullHost(); return s }(), check: wantWarnings("Image mount is an experimental feature")},
		{name: "extra host bad format", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.ExtraHosts = []string{"foo"} })}, wantErr: `bad format for add-host: "foo"`},
		{name: "extra host bad ip", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.ExtraHosts = []string{"foo:bar"} })}, wantErr: `invalid IP address in add-host: "bar"`},
		{name: "extra host gateway and ipv6", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.ExtraHosts = []string{"gw:host-gateway", "v6:::1"} })}},
		{name: "port container zero", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.PortBindings = network.PortMap{network.MustParsePort("0/tcp"): nil} })}, wantErr: `invalid port specification: "0/tcp"`},
		{name: "host port abc", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "abc"}}}
		})}, wantErr: `invalid port specification: "abc"`},
		{name: "host port too big", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "70000"}}}
		})}, wantErr: `invalid port specification: "70000"`},
		{name: "host port reversed range", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "9-8"}}}
		})}, wantErr: `invalid port specification: "9-8"`},
		{name: "host port range ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "8000-8010"}, {HostPort: ""}}}
		})}},
		{name: "restart unknown", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.RestartPolicy.Name = "sometimes" })}, wantErr: "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{name: "restart always with count", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.RestartPolicy = container.RestartPolicy{Name: "always", MaximumRetryCount: 3}
		})}, wantErr: "invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{name: "restart on-failure negative", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.RestartPolicy = container.RestartPolicy{Name: "on-failure", MaximumRetryCount: -1}
		})}, wantErr: "invalid restart policy: maximum retry count cannot be negative"},
		{name: "restart on-failure count ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.RestartPolicy = container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 5}
		})}},
		{name: "cap add unknown", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CapAdd = []string{"foo"} })}, wantErr: `invalid CapAdd: unknown capability: "CAP_FOO"`},
		{name: "cap drop unknown", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CapDrop = []string{"CAP_BAR"} })}, wantErr: `invalid CapDrop: unknown capability: "CAP_BAR"`},
		{name: "caps normalised and kept as given", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.CapAdd = []string{"net_admin", "ALL"}
			h.CapDrop = []string{"cap_chown"}
		})},
			check: func(t *testing.T, v *spec.Verified) {
				if !slices.Equal(v.HostConfig.CapAdd, []string{"net_admin", "ALL"}) {
					t.Errorf("CapAdd = %q", v.HostConfig.CapAdd)
				}
			}},
		{name: "annotation empty key", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Annotations = map[string]string{"": "x"} })}, wantErr: "invalid Annotations: the empty string is not permitted as an annotation key"},

		// Resources.
		{name: "memory below 6MB", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Memory = 1 << 20 })}, wantErr: "Minimum memory limit allowed is 6MB"},
		{name: "memory swap doubled", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Memory = 64 << 20 })}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.MemorySwap != 128<<20 {
				t.Errorf("MemorySwap = %d", v.HostConfig.MemorySwap)
			}
		}},
		{name: "memory unsupported", si: &SysInfo{NumCPU: 2}, req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Memory = 64 << 20 })},
			check: func(t *testing.T, v *spec.Verified) {
				wantWarnings("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.")(t, v)
				if v.HostConfig.Memory != 0 || v.HostConfig.MemorySwap != -1 {
					t.Errorf("Memory, MemorySwap = %d, %d; want 0, -1", v.HostConfig.Memory, v.HostConfig.MemorySwap)
				}
			}},
		{name: "swap unsupported", si: func() *SysInfo { s := fullHost(); s.SwapLimit = false; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Memory = 64 << 20 })},
			check: func(t *testing.T, v *spec.Verified) {
				wantWarnings("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")(t, v)
				if v.HostConfig.MemorySwap != -1 {
					t.Errorf("MemorySwap = %d, want -1", v.HostConfig.MemorySwap)
				}
			}},
		{name: "swap below memory", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Memory = 64 << 20; h.MemorySwap = 32 << 20 })}, wantErr: "Minimum memoryswap limit should be larger than memory limit, see usage"},
		{name: "swap without memory", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.MemorySwap = 32 << 20 })}, wantErr: "You should always set the Memory limit when using Memoryswap limit, see usage"},
		{name: "swappiness out of range", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.MemorySwappiness = i64(101) })}, wantErr: "Invalid value: 101, valid memory swappiness range is 0-100"},
		{name: "swappiness -1 becomes nil", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.MemorySwappiness = i64(-1) })}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.MemorySwappiness != nil {
				t.Error("MemorySwappiness not nil")
			}
		}},
		{name: "swappiness on cgroup v2", si: v2Host(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.MemorySwappiness = i64(10) })},
			check: wantWarnings("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.")},
		{name: "reservation below 6MB", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.MemoryReservation = 1 << 20 })}, wantErr: "Minimum memory reservation allowed is 6MB"},
		{name: "memory below reservation", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Memory = 10 << 20; h.MemoryReservation = 20 << 20 })}, wantErr: "Minimum memory limit can not be less than memory reservation limit, see usage"},
		{name: "oom kill disable without memory", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.OomKillDisable = bptr(true) })},
			check: wantWarnings("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.")},
		{name: "oom kill disable on cgroup v2", si: v2Host(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.OomKillDisable = bptr(true) })},
			check: func(t *testing.T, v *spec.Verified) {
				wantWarnings("Your kernel does not support OomKillDisable. OomKillDisable discarded.")(t, v)
				if v.HostConfig.OomKillDisable == nil || *v.HostConfig.OomKillDisable {
					t.Errorf("OomKillDisable = %v, want &false (discarded, then defaulted)", v.HostConfig.OomKillDisable)
				}
			}},
		{name: "pids unsupported", si: func() *SysInfo { s := fullHost(); s.PidsLimit = false; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.PidsLimit = i64(100) })},
			check: wantWarnings("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.")},
		{name: "nano cpus and period", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NanoCPUs = 1e9; h.CPUPeriod = 100000 })}, wantErr: "Conflicting options: Nano CPUs and CPU Period cannot both be set"},
		{name: "nano cpus and quota", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NanoCPUs = 1e9; h.CPUQuota = 50000 })}, wantErr: "Conflicting options: Nano CPUs and CPU Quota cannot both be set"},
		{name: "nano cpus without cfs", si: func() *SysInfo { s := fullHost(); s.CPUCfs = false; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NanoCPUs = 1e9 })}, wantErr: "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"},
		{name: "nano cpus above host", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NanoCPUs = 3e9 })}, wantErr: "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{name: "nano cpus negative", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.NanoCPUs = -1 })}, wantErr: "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{name: "cpu shares unsupported", si: func() *SysInfo { s := fullHost(); s.CPUShares = false; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPUShares = 512 })},
			check: func(t *testing.T, v *spec.Verified) {
				wantWarnings("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.")(t, v)
				if v.HostConfig.CPUShares != 0 {
					t.Errorf("CPUShares = %d", v.HostConfig.CPUShares)
				}
			}},
		{name: "cpu period out of range", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPUPeriod = 999 })}, wantErr: "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{name: "cpu quota too small", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPUQuota = 999 })}, wantErr: "CPU cfs quota can not be less than 1ms (i.e. 1000)"},
		{name: "cpu quota -1 ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPUQuota = -1 })}},
		{name: "cpu percent warns", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CPUPercent = 50 })}, check: wantWarnings("linux does not support CPU percent. Percent discarded.")},
		{name: "cpuset bad format", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CpusetCpus = "1-42,," })}, wantErr: "Invalid value 1-42,, for cpuset cpus: invalid format: 1-42,,"},
		{name: "cpuset cpus unavailable", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CpusetCpus = "5" })}, wantErr: "Requested CPUs are not available - requested 5, available: 0-1"},
		{name: "cpuset mems unavailable", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CpusetMems = "1" })}, wantErr: "Requested memory nodes are not available - requested 1, available: 0"},
		{name: "cpuset mems bad", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CpusetMems = "a" })}, wantErr: "Invalid value a for cpuset mems: invalid format: a"},
		{name: "cpuset ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CpusetCpus = "0,1"; h.CpusetMems = "0" })}},
		{name: "blkio weight range", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.BlkioWeight = 5 })}, wantErr: "Range of blkio weight is from 10 to 1000"},

		// Platform settings.
		{name: "ipc mode invalid", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.IpcMode = "foo" })}, wantErr: "invalid IPC mode: foo"},
		{name: "ipc container empty passes", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.IpcMode = "container:" })}},
		{name: "pid mode container empty", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.PidMode = "container:" })}, wantErr: "invalid PID mode: container:"},
		{name: "shm negative", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.ShmSize = -1 })}, wantErr: "SHM size can not be less than 0"},
		{name: "uts mode invalid", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.UTSMode = "foo" })}, wantErr: "invalid UTS mode: foo"},
		{name: "oom score adj", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.OomScoreAdj = 1001 })}, wantErr: "Invalid value 1001, range for oom score adj is [-1000, 1000]"},
		{name: "ip forwarding disabled", si: func() *SysInfo { s := fullHost(); s.IPv4ForwardingDisabled = true; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {})},
			check: wantWarnings("IPv4 forwarding is disabled. Networking will not work.")},
		{name: "ip forwarding disabled host net", si: func() *SysInfo { s := fullHost(); s.IPv4ForwardingDisabled = true; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.NetworkMode = "host"
			h.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "80"}}}
		})}, check: wantWarnings("Published ports are discarded when using host network mode")},
		{name: "userns privileged", opts: []Option{WithUserNamespaceRemap(true)}, req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Privileged = true })},
			wantErr: "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode"},
		{name: "userns host pid", opts: []Option{WithUserNamespaceRemap(true)}, req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.PidMode = "host" })},
			wantErr: "cannot share the host PID namespace when user namespaces are enabled"},
		{name: "systemd cgroup parent", si: func() *SysInfo { s := v2Host(); s.SystemdCgroup = true; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CgroupParent = "foo" })},
			wantErr: `cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"`},
		{name: "runtime unknown", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Runtime = "crun" })}, wantErr: "unknown or invalid runtime name: crun"},
		{name: "runtime shim name passes", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Runtime = "io.containerd.runsc.v1" })}},
		{name: "runtime configured", opts: []Option{WithRuntimes("", "crun")}, req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Runtime = "crun" })}},
		{name: "tmpfs relative", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Tmpfs = map[string]string{"run": ""} })}, wantErr: "invalid mount path: 'run' mount path must be absolute"},
		{name: "tmpfs root", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Tmpfs = map[string]string{"/": ""} })}, wantErr: "invalid specification: destination can't be '/'"},
		{name: "cgroupns invalid", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CgroupnsMode = "foo" })}, wantErr: "invalid cgroup namespace mode: foo"},
		{name: "cgroupns unsupported", si: func() *SysInfo { s := fullHost(); s.CgroupNamespaces = false; return s }(), req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.CgroupnsMode = "private" })},
			check: wantWarnings("Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded.")},

		// Binds.
		{name: "bind invalid spec", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Binds = []string{":/d"} })}, wantErr: "invalid volume specification: ':/d'"},
		{name: "bind mode only", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Binds = []string{"/src:ro"} })}, wantErr: "invalid volume specification: '/src:ro'"},
		{name: "bind bad mode", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Binds = []string{"/src:/d:rx"} })}, wantErr: "invalid mode: rx"},
		{name: "bind relative target", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Binds = []string{"/src:d"} })},
			wantErr: `invalid volume specification: '/src:d': invalid mount config for type "bind": invalid mount path: 'd' mount path must be absolute`},
		{name: "bind duplicate with tmpfs", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Binds = []string{"/src:/d:ro,z"}
			h.Tmpfs = map[string]string{"/d": ""}
		})}, wantErr: "Duplicate mount point: /d"},
		{name: "bind named volume ok", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) { h.Binds = []string{"data:/data:nocopy", "/anon"} })}},

		// Networking config.
		{name: "endpoint nil", req: spec.CreateRequest{Config: cfg(), NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"net1": nil}}},
			wantErr: "invalid config for network net1: EndpointsConfig is nil"},
		{name: "endpoint ipv4 family", req: spec.CreateRequest{Config: cfg(), NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"net1": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("fd00::1"), IPv6Address: netip.MustParseAddr("::ffff:1.2.3.4")}},
		}}}, wantErr: "invalid config for network net1: invalid endpoint settings:\ninvalid IPv4 address: fd00::1\ninvalid IPv6 address: ::ffff:1.2.3.4"},
		{name: "endpoints several ok", req: spec.CreateRequest{Config: cfg(), NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"net1": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("10.0.0.2")}}, "net2": {},
		}}}},

		// Defaults.
		{name: "defaults on v1", req: spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{}}, check: func(t *testing.T, v *spec.Verified) {
			h := v.HostConfig
			if h.ShmSize != 64<<20 || h.IpcMode != "private" || h.CgroupnsMode != "host" || h.Runtime != "runc" || h.OomKillDisable == nil || *h.OomKillDisable || h.NetworkMode != "" {
				t.Errorf("defaults: shm %d ipc %q cgroupns %q runtime %q oom %v netmode %q", h.ShmSize, h.IpcMode, h.CgroupnsMode, h.Runtime, h.OomKillDisable, h.NetworkMode)
			}
		}},
		{name: "restart policy defaults to no", req: spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{}}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled {
				t.Errorf("RestartPolicy.Name = %q, want no", v.HostConfig.RestartPolicy.Name)
			}
		}},
		{name: "restart policy stays empty without a HostConfig", req: spec.CreateRequest{Config: cfg()}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.RestartPolicy.Name != "" {
				t.Errorf("RestartPolicy.Name = %q, want empty as moby keeps it", v.HostConfig.RestartPolicy.Name)
			}
		}},
		{name: "defaults on v2", si: v2Host(), req: spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{Privileged: true}}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.CgroupnsMode != "private" {
				t.Errorf("CgroupnsMode = %q, want private", v.HostConfig.CgroupnsMode)
			}
		}},
		{name: "privileged on v1 gets host cgroupns", req: spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{Privileged: true}}, check: func(t *testing.T, v *spec.Verified) {
			if v.HostConfig.CgroupnsMode != "host" {
				t.Errorf("CgroupnsMode = %q, want host", v.HostConfig.CgroupnsMode)
			}
		}},
		{name: "configured defaults", opts: []Option{WithShmSize(1 << 20), WithIpcMode("shareable"), WithCgroupnsMode("private"), WithRuntimes("crun")},
			req: spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{}}, check: func(t *testing.T, v *spec.Verified) {
				h := v.HostConfig
				if h.ShmSize != 1<<20 || h.IpcMode != "shareable" || h.CgroupnsMode != "private" || h.Runtime != "crun" {
					t.Errorf("shm %d ipc %q cgroupns %q runtime %q", h.ShmSize, h.IpcMode, h.CgroupnsMode, h.Runtime)
				}
			}},
		{name: "nil host config skips checks and gets defaults", req: spec.CreateRequest{Config: cfg()}, si: func() *SysInfo { s := fullHost(); s.IPv4ForwardingDisabled = true; return s }(),
			check: func(t *testing.T, v *spec.Verified) {
				wantWarnings()(t, v)
				h := v.HostConfig
				if h == nil || h.ShmSize != 64<<20 || h.IpcMode != "private" || h.Runtime != "runc" || h.OomKillDisable == nil {
					t.Fatalf("HostConfig = %+v", h)
				}
			}},
		{name: "shm size kept", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.ShmSize = 1 << 30
			h.IpcMode = "host"
			h.Runtime = "io.containerd.runc.v2"
		})},
			check: func(t *testing.T, v *spec.Verified) {
				if v.HostConfig.ShmSize != 1<<30 || v.HostConfig.IpcMode != "host" || v.HostConfig.Runtime != "io.containerd.runc.v2" {
					t.Errorf("HostConfig = %+v", v.HostConfig)
				}
			}},
		{name: "ulimits not validated", req: spec.CreateRequest{Config: cfg(), HostConfig: hc(func(h *container.HostConfig) {
			h.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 2048, Hard: 1024}}
		})}, check: func(t *testing.T, v *spec.Verified) {
			if len(v.HostConfig.Ulimits) != 1 || v.HostConfig.Ulimits[0].Soft != 2048 {
				t.Errorf("Ulimits = %+v", v.HostConfig.Ulimits)
			}
		}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			si := tc.si
			if si == nil {
				si = fullHost()
			}
			v := New(append([]Option{WithSysInfo(si)}, tc.opts...)...)
			before := snapshot(t, tc.req)
			got, err := v.Verify(ctx, &tc.req)
			if after := snapshot(t, tc.req); !reflect.DeepEqual(before, after) {
				t.Errorf("Verify changed the request")
			}
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("err = nil, want %q", tc.wantErr)
				}
				if err.Error() != tc.wantErr {
					t.Fatalf("err = %q\nwant  %q", err, tc.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("class = %v, want invalid argument", errdefs.ClassOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

// snapshot is a deep copy used to check that Verify leaves the request alone.
func snapshot(t *testing.T, r spec.CreateRequest) spec.CreateRequest {
	t.Helper()
	return spec.CreateRequest{Name: r.Name, Config: CopyConfig(r.Config), HostConfig: CopyHostConfig(r.HostConfig), NetworkingConfig: CopyNetworkingConfig(r.NetworkingConfig)}
}

func TestProbeSysInfo(t *testing.T) {
	si := ProbeSysInfo()
	if si.NumCPU != runtime.NumCPU() {
		t.Errorf("NumCPU = %d, want %d", si.NumCPU, runtime.NumCPU())
	}
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Skipf("no /proc/sys/net/ipv4/ip_forward: %v", err)
	}
	if si.IPv4ForwardingDisabled != (strings.TrimSpace(string(fwd)) != "1") {
		t.Errorf("IPv4ForwardingDisabled = %v with ip_forward %q", si.IPv4ForwardingDisabled, fwd)
	}
	_, v2err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	if (v2err == nil) != si.CgroupUnified {
		t.Errorf("CgroupUnified = %v, but cgroup.controllers stat err = %v", si.CgroupUnified, v2err)
	}
	if si.Cpuset && si.Cpus == "" {
		t.Error("cpuset controller found but no CPUs read")
	}
	// The host's own CPU list must pass the check it is read for.
	if si.Cpuset {
		if ok, err := cpusetAvailable(si.Cpus, si.Cpus); !ok || err != nil {
			t.Errorf("host cpus %q not available to themselves: %v %v", si.Cpus, ok, err)
		}
	}
	// NanoCPUs equal to the host's CPU count passes, one more CPU is refused.
	v := New()
	req := &spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{Resources: container.Resources{NanoCPUs: int64(runtime.NumCPU()) * 1e9}}}
	if _, err := v.Verify(context.Background(), req); err != nil && si.CPUCfs {
		t.Errorf("NanoCPUs = NumCPU: %v", err)
	}
	req.HostConfig.NanoCPUs += 1e9
	if _, err := v.Verify(context.Background(), req); err == nil {
		t.Error("NanoCPUs = NumCPU+1 accepted")
	}
}

type fakeHost struct{ recs map[string]*spec.Record }

func (h fakeHost) Container(_ context.Context, ref string) (*spec.Record, error) {
	if r, ok := h.recs[ref]; ok {
		return r, nil
	}
	return nil, errdefs.NotFound(os.ErrNotExist)
}

func (h fakeHost) Containers(context.Context) ([]*spec.Record, error) { return nil, nil }

func TestSharedNamespacesRewrittenToID(t *testing.T) {
	id := strings.Repeat("ab", 32)
	v := New(WithSysInfo(fullHost()), WithHost(fakeHost{recs: map[string]*spec.Record{"web": {ID: id}}}))
	got, err := v.Verify(context.Background(), &spec.CreateRequest{Config: cfg(), HostConfig: &container.HostConfig{
		PidMode: "container:web", IpcMode: "container:web", NetworkMode: "container:nosuch",
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := got.HostConfig
	if h.PidMode != container.PidMode("container:"+id) || h.IpcMode != container.IpcMode("container:"+id) || h.NetworkMode != "container:nosuch" {
		t.Errorf("pid %q ipc %q net %q", h.PidMode, h.IpcMode, h.NetworkMode)
	}
}

// TestDeepCopyNoAliasing fills every field of the request types and checks that the copies
// are equal and share no memory with the originals, so a field added to the API types
// without a copy here fails the test.
func TestDeepCopyNoAliasing(t *testing.T) {
	c := &container.Config{}
	h := &container.HostConfig{}
	n := &network.NetworkingConfig{}
	fill(reflect.ValueOf(c).Elem())
	fill(reflect.ValueOf(h).Elem())
	fill(reflect.ValueOf(n).Elem())
	for _, p := range []struct{ a, b any }{{c, CopyConfig(c)}, {h, CopyHostConfig(h)}, {n, CopyNetworkingConfig(n)}} {
		if !reflect.DeepEqual(p.a, p.b) {
			t.Fatalf("copy of %T differs", p.a)
		}
		noAlias(t, reflect.TypeOf(p.a).String(), reflect.ValueOf(p.a), reflect.ValueOf(p.b))
	}
}

var portType = reflect.TypeOf(network.Port{})

func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		if v.Type().Key() == portType {
			k.Set(reflect.ValueOf(network.MustParsePort("80/tcp")))
		} else {
			fill(k)
		}
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	}
}

func noAlias(t *testing.T, path string, a, b reflect.Value) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return
		}
		// Pointers to zero-size values all point at the same address; nothing can be shared.
		if a.Pointer() == b.Pointer() && a.Type().Elem().Size() != 0 {
			t.Errorf("%s: pointer shared", path)
			return
		}
		noAlias(t, path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if a.Type().Field(i).IsExported() {
				noAlias(t, path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: slice shared", path)
			return
		}
		for i := 0; i < a.Len(); i++ {
			noAlias(t, path+"[]", a.Index(i), b.Index(i))
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: map shared", path)
			return
		}
		for _, k := range a.MapKeys() {
			noAlias(t, path+"[k]", a.MapIndex(k), b.MapIndex(k))
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	v := New(WithSysInfo(fullHost()))
	req := &spec.CreateRequest{Name: "web", Config: &container.Config{Image: "busybox", Env: []string{"A=1"}, Cmd: []string{"sh"}},
		HostConfig: &container.HostConfig{Resources: container.Resources{Memory: 64 << 20}, PortBindings: network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "8080"}}}}}
	for b.Loop() {
		if _, err := v.Verify(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestImpl(t *testing.T) {
	impl := Impl()
	x, err := impl.New(context.Background(), core.Env{})
	if err != nil || impl.Stage != spec.StageVerify || impl.Name != "moby" {
		t.Fatalf("Impl = %+v, %v", impl, err)
	}
	if _, ok := x.(core.Verifier); !ok {
		t.Errorf("New returned %T", x)
	}
}
