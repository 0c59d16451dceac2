// Package moby is the merge stage as moby's daemon does it (daemon/commit.go merge, then
// mergeAndVerifyConfig and mergeAndVerifyLogConfig): the image config fills what the user
// left empty, an Entrypoint of [""] is reset, a container needs a command, the log
// configuration gets the default driver and is validated, and Path and Args are computed as
// moby's newContainer computes them. The hostname defaults to the first 12 characters of the
// container ID (the host's name in host network mode) and Config.Image is the image
// reference as the user typed it.
//
// Merge never changes rec: it deep-copies the container config and the log configuration;
// Merged.HostConfig is otherwise a shallow copy of the verified HostConfig, sharing its
// slices and maps, which every stage treats as read-only.
//
// # Image config
//
// spec.Image carries the OCI image config with Docker's extensions, so the image's
// Healthcheck is merged field-wise. OnBuild, Shell, Domainname and StopTimeout are never
// merged, as in moby. An exposed port of the image that does not parse as a port is skipped.
//
// # Which moby
//
// "no command specified" is moby's newest text (older: "No command specified"). The log
// drivers known are json-file, local and none (the default is json-file, with no default
// options); moby validates the json-file max-size, max-file and compress values only when
// the logger starts, this stage already at create, with moby's logger messages.
package moby

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the name of this implementation in a pipeline.
const Name = "moby"

// DefaultLogDriver is moby's default log driver.
const DefaultLogDriver = "json-file"

// Impl returns the merge stage implementation "moby" for a pipeline.
func Impl() core.Impl {
	return core.Impl{Stage: spec.StageMerge, Name: Name, New: func(_ context.Context, env core.Env) (any, error) {
		return &Merger{}, nil
	}}
}

// Merger merges image configs into container configs. The zero value works.
type Merger struct {
	// Hostname returns the host's name for host network mode; os.Hostname when nil.
	Hostname func() (string, error)
}

var _ core.Merger = (*Merger)(nil)

// Merge returns the merged container config of rec.Request and rec.Image. Errors are
// InvalidArgument ("no command specified", log configuration), Internal when the image
// config blob or the host name cannot be read.
func (m *Merger) Merge(ctx context.Context, rec *spec.Record) (*spec.Merged, error) {
	if rec == nil || rec.Request == nil || rec.Request.Config == nil {
		return nil, errdefs.InvalidArgument(errors.New("config cannot be empty in order to create a container"))
	}
	cfg := copyConfig(rec.Request.Config)
	var hc container.HostConfig
	if rec.Request.HostConfig != nil {
		hc = *rec.Request.HostConfig
	}
	hc.LogConfig.Config = maps.Clone(hc.LogConfig.Config)

	if img := rec.Image; img != nil {
		ic, err := m.imageConfig(ctx, img)
		if err != nil {
			return nil, err
		}
		merge(cfg, ic)
		cfg.Image = img.Ref
	}
	if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		cfg.Entrypoint = nil
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return nil, errdefs.InvalidArgument(errors.New("no command specified"))
	}
	if err := mergeAndVerifyLogConfig(&hc.LogConfig); err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	if cfg.Hostname == "" {
		if hc.NetworkMode.IsHost() {
			hn := m.Hostname
			if hn == nil {
				hn = os.Hostname
			}
			h, err := hn()
			if err != nil {
				return nil, errdefs.Internal(fmt.Errorf("merge: host name: %w", err))
			}
			cfg.Hostname = h
		} else if len(rec.ID) >= 12 {
			cfg.Hostname = rec.ID[:12]
		}
	}
	path, args := command(cfg)
	return &spec.Merged{Config: cfg, HostConfig: &hc, Path: path, Args: args}, nil
}

// command is moby's Path and Args: Entrypoint[0] with Entrypoint[1:]+Cmd, or Cmd[0] with
// Cmd[1:]. Args is never nil.
func command(cfg *container.Config) (string, []string) {
	if len(cfg.Entrypoint) > 0 {
		args := make([]string, 0, len(cfg.Entrypoint)-1+len(cfg.Cmd))
		args = append(append(args, cfg.Entrypoint[1:]...), cfg.Cmd...)
		return cfg.Entrypoint[0], args
	}
	return cfg.Cmd[0], append([]string{}, cfg.Cmd[1:]...)
}

// imageConfig maps the image config, with Docker's Healthcheck, to a container config.
func (m *Merger) imageConfig(ctx context.Context, img *spec.Image) (*container.Config, error) {
	oc := img.Config
	ic := &container.Config{
		User:       oc.User,
		Env:        oc.Env,
		Entrypoint: oc.Entrypoint,
		Cmd:        oc.Cmd,
		Volumes:    oc.Volumes,
		WorkingDir: oc.WorkingDir,
		Labels:     oc.Labels,
		StopSignal: oc.StopSignal,
	}
	if len(oc.ExposedPorts) > 0 {
		ic.ExposedPorts = make(network.PortSet, len(oc.ExposedPorts))
		for k := range oc.ExposedPorts {
			if p, err := network.ParsePort(k); err == nil {
				ic.ExposedPorts[p] = struct{}{}
			}
		}
	}
	if hc := oc.Healthcheck; hc != nil {
		ic.Healthcheck = &container.HealthConfig{
			Test:          append([]string(nil), hc.Test...),
			Interval:      hc.Interval,
			Timeout:       hc.Timeout,
			StartPeriod:   hc.StartPeriod,
			StartInterval: hc.StartInterval,
			Retries:       hc.Retries,
		}
	}
	return ic, nil
}

// merge fills user from image with moby's rules. Everything it takes from image is copied.
func merge(user, image *container.Config) {
	if user.User == "" {
		user.User = image.User
	}
	if len(user.ExposedPorts) == 0 {
		user.ExposedPorts = maps.Clone(image.ExposedPorts)
	} else {
		for p := range image.ExposedPorts {
			user.ExposedPorts[p] = struct{}{}
		}
	}
	if len(user.Env) == 0 {
		user.Env = slices.Clone(image.Env)
	} else {
		keys := make(map[string]bool, len(user.Env))
		for _, e := range user.Env {
			k, _, _ := strings.Cut(e, "=")
			keys[k] = true
		}
		for _, e := range image.Env {
			if k, _, _ := strings.Cut(e, "="); !keys[k] {
				user.Env = append(user.Env, e)
			}
		}
	}
	if user.Labels == nil {
		user.Labels = map[string]string{}
	}
	for k, v := range image.Labels {
		if _, ok := user.Labels[k]; !ok {
			user.Labels[k] = v
		}
	}
	if len(user.Entrypoint) == 0 {
		if len(user.Cmd) == 0 {
			user.Cmd = slices.Clone(image.Cmd)
		}
		if user.Entrypoint == nil {
			user.Entrypoint = slices.Clone(image.Entrypoint)
		}
	}
	if ih := image.Healthcheck; ih != nil {
		if user.Healthcheck == nil {
			h := *ih
			h.Test = slices.Clone(ih.Test)
			user.Healthcheck = &h
		} else {
			uh := user.Healthcheck
			if len(uh.Test) == 0 {
				uh.Test = slices.Clone(ih.Test)
			}
			if uh.Interval == 0 {
				uh.Interval = ih.Interval
			}
			if uh.Timeout == 0 {
				uh.Timeout = ih.Timeout
			}
			if uh.StartPeriod == 0 {
				uh.StartPeriod = ih.StartPeriod
			}
			if uh.StartInterval == 0 {
				uh.StartInterval = ih.StartInterval
			}
			if uh.Retries == 0 {
				uh.Retries = ih.Retries
			}
		}
	}
	if user.WorkingDir == "" {
		user.WorkingDir = image.WorkingDir
	}
	if len(user.Volumes) == 0 {
		user.Volumes = maps.Clone(image.Volumes)
	} else {
		for k := range image.Volumes {
			user.Volumes[k] = struct{}{}
		}
	}
	if user.StopSignal == "" {
		user.StopSignal = image.StopSignal
	}
}

func copyConfig(c *container.Config) *container.Config {
	out := *c
	out.ExposedPorts = maps.Clone(c.ExposedPorts)
	out.Env = slices.Clone(c.Env)
	out.Cmd = slices.Clone(c.Cmd)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		out.Healthcheck = &h
	}
	out.Volumes = maps.Clone(c.Volumes)
	out.Entrypoint = slices.Clone(c.Entrypoint)
	out.OnBuild = slices.Clone(c.OnBuild)
	out.Labels = maps.Clone(c.Labels)
	if c.StopTimeout != nil {
		t := *c.StopTimeout
		out.StopTimeout = &t
	}
	out.Shell = slices.Clone(c.Shell)
	return &out
}

// Log configuration.

var (
	// builtInLogOpts are handled by the logging layer, not by the driver.
	builtInLogOpts = map[string]bool{
		"mode": true, "max-buffer-size": true,
		"cache-disabled": true, "cache-max-size": true, "cache-max-file": true, "cache-compress": true,
	}
	jsonFileOpts = map[string]bool{
		"max-file": true, "max-size": true, "compress": true, "labels": true,
		"labels-regex": true, "env": true, "env-regex": true, "tag": true,
	}
	localOpts = map[string]bool{"max-file": true, "max-size": true, "compress": true}
)

// mergeAndVerifyLogConfig fills the default driver and checks the options with moby's texts.
func mergeAndVerifyLogConfig(lc *container.LogConfig) error {
	if lc.Type == "" {
		lc.Type = DefaultLogDriver
	}
	if lc.Config == nil {
		lc.Config = map[string]string{}
	}
	cfg := lc.Config
	if lc.Type == "none" {
		return nil
	}
	switch container.LogMode(cfg["mode"]) {
	case container.LogModeBlocking, container.LogModeNonBlock, container.LogModeUnset:
	default:
		return fmt.Errorf("logger: logging mode not supported: %s", cfg["mode"])
	}
	if s, ok := cfg["max-buffer-size"]; ok {
		if container.LogMode(cfg["mode"]) != container.LogModeNonBlock {
			return fmt.Errorf("logger: max-buffer-size option is only supported with 'mode=%s'", container.LogModeNonBlock)
		}
		if _, err := units.RAMInBytes(s); err != nil {
			return fmt.Errorf("error parsing option max-buffer-size: %w", err)
		}
	}
	if v := cfg["cache-disabled"]; v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("invalid value for option cache-disabled: %s", v)
		}
	}
	switch lc.Type {
	case "json-file":
		for k := range cfg {
			if !builtInLogOpts[k] && !jsonFileOpts[k] {
				return fmt.Errorf("unknown log opt '%s' for json-file log driver", k)
			}
		}
		return verifyJSONFileValues(cfg)
	case "local":
		for k := range cfg {
			if !builtInLogOpts[k] && !localOpts[k] {
				return fmt.Errorf("unknown log opt '%s' for log driver local", k)
			}
		}
		return nil
	default:
		return fmt.Errorf("logger: no log driver named '%s' is registered", lc.Type)
	}
}

// verifyJSONFileValues checks what the json-file logger checks when it starts.
func verifyJSONFileValues(cfg map[string]string) error {
	var capval int64 = -1
	if s, ok := cfg["max-size"]; ok {
		var err error
		if capval, err = units.FromHumanSize(s); err != nil {
			return err
		}
		if capval <= 0 {
			return errors.New("max-size must be a positive number")
		}
	}
	maxFiles := 1
	if s, ok := cfg["max-file"]; ok {
		var err error
		if maxFiles, err = strconv.Atoi(s); err != nil {
			return err
		}
		if maxFiles < 1 {
			return errors.New("max-file cannot be less than 1")
		}
	}
	if s, ok := cfg["compress"]; ok {
		compress, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		if compress && (maxFiles == 1 || capval == -1) {
			return errors.New("compress cannot be true when max-file is less than 2 or max-size is not set")
		}
	}
	return nil
}
