package moby

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the name of this implementation in a pipeline.
const Name = "moby"

// Defaults of moby's daemon configuration that the verify stage fills in.
const (
	// DefaultShmSize is moby's default /dev/shm size (64 MiB).
	DefaultShmSize int64 = 64 << 20
	// DefaultIpcMode is moby's default-ipc-mode for daemons created since API 1.40.
	DefaultIpcMode = container.IPCModePrivate
	// DefaultRuntime is moby's default runtime.
	DefaultRuntime = "runc"
)

// Impl returns the verify stage implementation "moby" for a pipeline.
func Impl() core.Impl {
	return core.Impl{Stage: spec.StageVerify, Name: Name, New: func(_ context.Context, env core.Env) (any, error) {
		return New(WithHost(env.Host)), nil
	}}
}

// Verifier validates create requests as moby's daemon does. The zero value is not usable;
// build one with New.
type Verifier struct {
	host           core.Host
	shmSize        int64
	ipcMode        container.IpcMode
	cgroupnsMode   container.CgroupnsMode
	defaultRuntime string
	runtimes       map[string]bool
	remappedRoot   bool

	sysOnce sync.Once
	sys     *SysInfo
}

var _ core.Verifier = (*Verifier)(nil)

// Option configures a Verifier.
type Option func(*Verifier)

// WithHost lets the verifier rewrite --pid/--ipc/--network container:NAME to the full ID of
// the container, as moby's adaptSharedNamespaceContainer does. Without it the names stay.
func WithHost(h core.Host) Option { return func(v *Verifier) { v.host = h } }

// WithSysInfo replaces the probe of the host's kernel and cgroups.
func WithSysInfo(si *SysInfo) Option {
	return func(v *Verifier) { v.sysOnce.Do(func() { v.sys = si }) }
}

// WithShmSize sets the default /dev/shm size (moby's --default-shm-size).
func WithShmSize(n int64) Option { return func(v *Verifier) { v.shmSize = n } }

// WithIpcMode sets the default IPC mode (moby's --default-ipc-mode).
func WithIpcMode(m container.IpcMode) Option { return func(v *Verifier) { v.ipcMode = m } }

// WithCgroupnsMode sets the default cgroup namespace mode (moby's --default-cgroupns-mode);
// without it the default is private on cgroup v2 and host on v1.
func WithCgroupnsMode(m container.CgroupnsMode) Option {
	return func(v *Verifier) { v.cgroupnsMode = m }
}

// WithRuntimes sets the default runtime and adds configured runtime names to runc and
// io.containerd.runc.v2.
func WithRuntimes(def string, names ...string) Option {
	return func(v *Verifier) {
		if def != "" {
			v.defaultRuntime = def
		}
		for _, n := range names {
			v.runtimes[n] = true
		}
	}
}

// WithUserNamespaceRemap tells the verifier that the engine remaps root (moby's
// --userns-remap), which forbids privileged and host-namespace containers in the private
// user namespace.
func WithUserNamespaceRemap(on bool) Option { return func(v *Verifier) { v.remappedRoot = on } }

// New returns a Verifier with moby's default daemon configuration. The host is probed on the
// first Verify, not here.
func New(opts ...Option) *Verifier {
	v := &Verifier{
		shmSize:        DefaultShmSize,
		ipcMode:        DefaultIpcMode,
		defaultRuntime: DefaultRuntime,
		runtimes:       map[string]bool{"runc": true, "io.containerd.runc.v2": true},
	}
	for _, o := range opts {
		o(v)
	}
	v.runtimes[v.defaultRuntime] = true
	return v
}

// SysInfo returns the host facts the verifier checks against, probing them on first use.
func (v *Verifier) SysInfo() *SysInfo {
	v.sysOnce.Do(func() { v.sys = ProbeSysInfo() })
	return v.sys
}

// validName is moby's container name rule (daemon/names.go).
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func invalid(err error) error {
	if err == nil {
		return nil
	}
	return errdefs.InvalidArgument(err)
}

// Verify validates req and returns a deep copy with the defaults filled in. On an error the
// returned Verified is nil and the error is InvalidArgument with moby's message (moby also
// returns the warnings gathered before the error; the stage contract has no place for them).
func (v *Verifier) Verify(ctx context.Context, req *spec.CreateRequest) (*spec.Verified, error) {
	if req == nil || req.Config == nil {
		return nil, invalid(errors.New("config cannot be empty in order to create a container"))
	}
	out := &spec.Verified{
		Config:           CopyConfig(req.Config),
		HostConfig:       CopyHostConfig(req.HostConfig),
		NetworkingConfig: CopyNetworkingConfig(req.NetworkingConfig),
		Platform:         copyPlatform(req),
	}
	if out.HostConfig != nil && out.HostConfig.RestartPolicy.Name == "" {
		// moby's containerCreate normalises this before it verifies anything, and only for a
		// request that has a HostConfig: a request without one keeps "".
		out.HostConfig.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	si := v.SysInfo()
	c := &checker{v: v, si: si, cfg: out.Config, hc: out.HostConfig, nc: out.NetworkingConfig}
	if err := c.run(); err != nil {
		return nil, invalid(err)
	}
	if out.HostConfig == nil {
		out.HostConfig = &container.HostConfig{Runtime: v.defaultRuntime}
	}
	v.adapt(ctx, out.HostConfig, si)

	name := req.Name
	if name != "" {
		if name[0] == '/' {
			name = name[1:]
		}
		if !validName.MatchString(name) {
			return nil, invalid(fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name))
		}
	}
	out.Name = name
	out.Warnings = c.warnings
	return out, nil
}

func copyPlatform(req *spec.CreateRequest) *ocispec.Platform {
	if req.Platform == nil {
		return nil
	}
	p := *req.Platform
	p.OSFeatures = append([]string(nil), p.OSFeatures...)
	return &p
}
