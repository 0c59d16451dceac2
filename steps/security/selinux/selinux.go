// Package selinux is the security stage as moby's daemon does it, with
// github.com/opencontainers/selinux: generateSecurityOpt (label=disable for privileged
// containers and host IPC or PID namespaces, the SELinux label of the container named by
// --ipc/--pid container:X shared, unless the user gave a label option), then
// parseSecurityOpt (label, apparmor, seccomp, no-new-privileges and the deprecated colon
// form) and label.InitLabels, which chooses the process and mount labels and reserves the
// MCS level. Undo releases it.
//
// When SELinux is disabled on the host, as on most machines, InitLabels returns empty labels
// and accepts any label option; the code path is the same.
//
// # Which moby
//
// The error texts are moby's: `invalid --security-opt 1: "..."`, `invalid --security-opt 2:
// "..."`, `--ipc and --pid containers SELinux labels aren't the same`, and "No such container:
// X" (class InvalidArgument, as moby's create turns its NotFound into a bad parameter). The
// deprecation of "k:v" is a warning in Security.Warnings (moby only logs it).
//
// Options moby's daemon handles elsewhere are accepted here too, so that a valid docker
// request is not refused: "systempaths=unconfined" (used when the OCI spec is built),
// "writable-cgroups[=bool]" (moby 28). A seccomp value is "unconfined", "builtin" or a
// profile's JSON (the docker CLI reads the file and sends its content); JSON that does not
// parse is refused with `invalid --security-opt 2: "seccomp=..."` wrapping the parse error.
package selinux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the name of this implementation in a pipeline.
const Name = "selinux"

// Impl returns the security stage implementation "selinux" for a pipeline.
func Impl() core.Impl {
	return core.Impl{Stage: spec.StageSecurity, Name: Name, New: func(_ context.Context, env core.Env) (any, error) {
		return &Securer{Host: env.Host}, nil
	}}
}

// Securer chooses security profiles. Host is used to look up --ipc/--pid containers.
type Securer struct {
	Host core.Host
	// NoNewPrivileges is the engine-wide default (moby's --no-new-privileges).
	NoNewPrivileges bool
}

var (
	_ core.Securer = (*Securer)(nil)
	_ core.Undoer  = (*Securer)(nil)
)

// Secure returns the security profile for rec.Merged.HostConfig (rec.Request.HostConfig
// when the merge stage has not run). Errors: InvalidArgument for a bad option, a missing
// --ipc/--pid container or differing labels.
func (s *Securer) Secure(ctx context.Context, rec *spec.Record) (*spec.Security, error) {
	hc := hostConfig(rec)
	sec := &spec.Security{NoNewPrivileges: s.NoNewPrivileges}
	var opts []string
	if hc != nil {
		gen, err := s.generateSecurityOpt(ctx, hc.SecurityOpt, string(hc.IpcMode), string(hc.PidMode), hc.Privileged)
		if err != nil {
			return nil, err
		}
		opts = make([]string, 0, len(hc.SecurityOpt)+len(gen))
		opts = append(append(opts, hc.SecurityOpt...), gen...)
	}
	if len(opts) > 0 {
		sec.SecurityOpt = opts // as moby appends to the request's: nil stays nil
	}
	if err := parseSecurityOpt(sec, opts); err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	if hc != nil {
		sec.MaskedPaths, sec.ReadonlyPaths = clonePaths(hc.MaskedPaths), clonePaths(hc.ReadonlyPaths)
		// moby's createContainerOSSpecificSettings: nil means the defaults, unless privileged.
		if hc.MaskedPaths == nil && !hc.Privileged {
			sec.MaskedPaths = DefaultMaskedPaths()
		}
		if hc.ReadonlyPaths == nil && !hc.Privileged {
			sec.ReadonlyPaths = DefaultReadonlyPaths()
		}
	}
	return sec, nil
}

// clonePaths copies p keeping nil and empty apart.
func clonePaths(p []string) []string {
	if p == nil {
		return nil
	}
	return append([]string{}, p...)
}

// DefaultMaskedPaths returns the paths masked in a container that asks for none: those of
// moby's default OCI spec, plus the thermal_throttle directory of every CPU of this host
// that has one (they expose host state and moby masks them too).
//
// The CPUs are listed once per process: it takes a stat of two sysfs files per CPU (about
// 20 µs per create on the 2-CPU development machine, and so linearly more on a big host).
// A CPU hot-added later is masked once the engine restarts.
func DefaultMaskedPaths() []string {
	p := []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	return append(p, thermalThrottleDirs()...)
}

// thermalThrottleDirs lists the thermal_throttle directories of this host's CPUs.
var thermalThrottleDirs = sync.OnceValue(func() []string {
	var p []string
	for cpu := 0; ; cpu++ {
		dir := "/sys/devices/system/cpu/cpu" + strconv.Itoa(cpu)
		if _, err := os.Stat(dir); err != nil {
			return p
		}
		if _, err := os.Stat(dir + "/thermal_throttle"); err == nil {
			p = append(p, dir+"/thermal_throttle")
		}
	}
})

// DefaultReadonlyPaths returns the paths mounted read-only in a container that asks for
// none, as moby's default OCI spec has them.
func DefaultReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

func hostConfig(rec *spec.Record) *container.HostConfig {
	switch {
	case rec == nil:
		return nil
	case rec.Merged != nil && rec.Merged.HostConfig != nil:
		return rec.Merged.HostConfig
	case rec.Request != nil:
		return rec.Request.HostConfig
	}
	return nil
}

// Undo releases the MCS label reserved by Secure. It does nothing when rec.Security is nil
// (nothing was reserved, or the record was lost in a crash: the reservation lived in this
// process's memory only) and is idempotent.
func (s *Securer) Undo(_ context.Context, rec *spec.Record) error {
	if rec == nil || rec.Security == nil || rec.Security.ProcessLabel == "" {
		return nil
	}
	selinux.ReleaseLabel(rec.Security.ProcessLabel)
	return nil
}

// generateSecurityOpt returns the label options moby adds: none when the user gave a
// "label=" option, label=disable for host IPC, host PID or privileged, otherwise the label
// of the --ipc/--pid container.
func (s *Securer) generateSecurityOpt(ctx context.Context, userOpts []string, ipcMode, pidMode string, privileged bool) ([]string, error) {
	for _, opt := range userOpts {
		if k, _, _ := strings.Cut(opt, "="); k == "label" {
			return nil, nil
		}
	}
	if ipcMode == "host" || pidMode == "host" || privileged {
		return labelOpts(selinux.DisableSecOpt()), nil
	}
	ipcCtr := sharedContainer(ipcMode)
	pidCtr := sharedContainer(pidMode)
	var ipcLabel, pidLabel []string
	if ipcCtr != "" {
		l, err := s.sourceLabel(ctx, ipcCtr)
		if err != nil {
			return nil, err
		}
		if ipcLabel, err = selinux.DupSecOpt(l); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("security: label of container %s: %w", ipcCtr, err))
		}
		if pidCtr == "" {
			return labelOpts(ipcLabel), nil
		}
	}
	if pidCtr != "" {
		l, err := s.sourceLabel(ctx, pidCtr)
		if err != nil {
			return nil, err
		}
		if pidLabel, err = selinux.DupSecOpt(l); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("security: label of container %s: %w", pidCtr, err))
		}
		if ipcCtr == "" {
			return labelOpts(pidLabel), nil
		}
	}
	if pidLabel != nil && ipcLabel != nil {
		if len(pidLabel) != len(ipcLabel) {
			return nil, errdefs.InvalidArgument(errors.New("--ipc and --pid containers SELinux labels aren't the same"))
		}
		for i := range pidLabel {
			if pidLabel[i] != ipcLabel[i] {
				return nil, errdefs.InvalidArgument(errors.New("--ipc and --pid containers SELinux labels aren't the same"))
			}
		}
		return labelOpts(pidLabel), nil
	}
	return nil, nil
}

// sharedContainer returns X of "container:X", or "".
func sharedContainer(mode string) string {
	if k, v, ok := strings.Cut(mode, ":"); ok && k == "container" {
		return v
	}
	return ""
}

// sourceLabel returns the process label of the container ref.
func (s *Securer) sourceLabel(ctx context.Context, ref string) (string, error) {
	if s.Host == nil {
		return "", errdefs.InvalidArgument(fmt.Errorf("No such container: %s", ref))
	}
	rec, err := s.Host.Container(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", errdefs.InvalidArgument(fmt.Errorf("No such container: %s", ref))
		}
		return "", err
	}
	if rec == nil {
		return "", errdefs.InvalidArgument(fmt.Errorf("No such container: %s", ref))
	}
	if rec.Security == nil {
		return "", nil
	}
	return rec.Security.ProcessLabel, nil
}

func labelOpts(opts []string) []string {
	if len(opts) == 0 {
		return nil
	}
	out := make([]string, len(opts))
	for i, o := range opts {
		out[i] = "label=" + o
	}
	return out
}

// parseSecurityOpt applies the options to sec, then chooses the labels.
func parseSecurityOpt(sec *spec.Security, opts []string) error {
	var labels []string
	for _, opt := range opts {
		switch opt {
		case "no-new-privileges":
			sec.NoNewPrivileges = true
			continue
		case "writable-cgroups":
			continue
		case "disable":
			labels = append(labels, "disable")
			continue
		}
		var k, v string
		var ok bool
		if strings.Contains(opt, "=") {
			k, v, ok = strings.Cut(opt, "=")
		} else if strings.Contains(opt, ":") {
			k, v, ok = strings.Cut(opt, ":")
			sec.Warnings = append(sec.Warnings, "Security options with `:` as a separator are deprecated and will be completely unsupported in 17.04, use `=` instead.")
		}
		if !ok {
			return fmt.Errorf("invalid --security-opt 1: %q", opt)
		}
		switch k {
		case "label":
			labels = append(labels, v)
		case "apparmor":
			sec.AppArmorProfile = v
		case "seccomp":
			if v != "unconfined" && v != "builtin" {
				var profile map[string]any
				if err := json.Unmarshal([]byte(v), &profile); err != nil {
					return fmt.Errorf("invalid --security-opt 2: %q: %w", opt, err)
				}
			}
			sec.SeccompProfile = v
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
			sec.NoNewPrivileges = b
		case "writable-cgroups":
			if _, err := strconv.ParseBool(v); err != nil {
				return fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
		case "systempaths":
			if v != "unconfined" {
				return fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
		default:
			return fmt.Errorf("invalid --security-opt 2: %q", opt)
		}
	}
	var err error
	sec.ProcessLabel, sec.MountLabel, err = label.InitLabels(labels)
	return err
}
