// Package sdk is what a Slipway stage plugin is written with. A plugin author implements the
// same Go interfaces as an in-process stage (core.Networker, core.Layerer, ...) and serves
// them from a three-line main:
//
//	func main() {
//		n := &netfile.Net{}
//		sdk.Serve(sdk.Plugin{Name: "netfile", Version: "0.1.0", Network: n, Config: &n.Config})
//	}
//
// One binary may serve several stages (set several fields of Plugin) and a check step.
//
// Config: Plugin.Config points to the plugin's config struct, pre-filled with its defaults.
// The host sends the config as a JSON object once per process, before any stage call; the
// SDK decodes it strictly (an unknown field or a missing required one is InvalidArgument)
// into that struct, then calls Setup on every stage implementation that has one (Setupper),
// with the plugin's logger. The config schema that `describe` and the Describe RPC report is
// derived from the struct (see Schema).
//
// Logging: the logger given to Setup (and returned by Logger) writes hclog JSON to the
// plugin's stderr, which the host forwards into its own log with level and fields. Nothing
// may write to stdout before Serve: stdout carries go-plugin's handshake.
//
// A plugin gets no database and no engine state: what it keeps, it keeps in its own files
// (under a directory from its config), and every Undo must work from the container ID alone.
// During a call it may read the engine through host callbacks (HostFromContext): look up
// a container, resolve an image, add a warning to the run.
//
// Failures: an error a stage returns keeps its errdefs class and message on the host. A
// panic is not recovered: the plugin process dies, the host reports the call Unavailable
// with the panic's first line, undoes the run and starts the plugin again for the next call.
//
// Run with the single argument "describe" (and not by a host), a plugin binary prints its
// Description as JSON: the stages it serves, its versions and its config schema.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// Version is the SDK's version, reported by describe.
const Version = "0.1.0"

// Plugin is a plugin binary: its identity, the stages it serves and its config.
type Plugin struct {
	// Name is the plugin's name, as operators install and select it.
	Name string
	// Version is the plugin's own version (semver).
	Version string

	Verify   core.Verifier
	Image    core.ImageResolver
	Merge    core.Merger
	Security core.Securer
	Network  core.Networker
	Layer    core.Layerer
	Mkdir    core.DirMaker
	Register core.Registrar
	Check    core.Checker

	// Config points to the config struct, holding the defaults; nil for a plugin that takes
	// no config (any config but {} is then refused).
	Config any
}

// Setupper is implemented by stage implementations that prepare themselves once the config
// is decoded (open their files, check their config). An error fails Configure, and the host
// reports it with its class.
type Setupper interface {
	Setup(ctx context.Context, log hclog.Logger) error
}

func (p Plugin) stages() hostapi.Stages {
	return hostapi.Stages{Verify: p.Verify, Image: p.Image, Merge: p.Merge, Security: p.Security, Network: p.Network,
		Layer: p.Layer, Mkdir: p.Mkdir, Register: p.Register, Check: p.Check}
}

// Describe returns what p serves.
func Describe(p Plugin) hostapi.Description {
	return hostapi.Description{
		Name: p.Name, Version: p.Version, Stages: p.stages().Names(), ProtocolVersions: []int{hostapi.ProtocolVersion},
		Capabilities: hostapi.Capabilities, ConfigSchema: Schema(p.Config), SDKVersion: Version,
	}
}

var (
	logMu  sync.Mutex
	logger hclog.Logger = hclog.NewNullLogger()
)

// Logger returns the plugin's logger (a null logger outside Serve).
func Logger() hclog.Logger {
	logMu.Lock()
	defer logMu.Unlock()
	return logger
}

// Serve serves p and returns only when the host stops the plugin. Run with the argument
// "describe" outside a host, it prints Describe(p) as JSON and exits instead.
func Serve(p Plugin) {
	if len(os.Args) == 2 && os.Args[1] == "describe" && os.Getenv(hostapi.Handshake.MagicCookieKey) == "" {
		if err := PrintDescription(os.Stdout, p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The logger must take os.Stderr before plugin.Serve replaces it with a pipe to the host.
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: os.Stderr, JSONFormat: true})
	logMu.Lock()
	logger = log
	logMu.Unlock()
	go watchParent(log)
	plugin.Serve(ServeConfig(p, log))
}

// ServeConfig returns the go-plugin serve config of p, for tests that serve a plugin in
// process (go-plugin's ServeTestConfig) and for fixtures.
func ServeConfig(p Plugin, log hclog.Logger) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  hostapi.Handshake,
		VersionedPlugins: hostapi.VersionedPlugins(GRPCPlugin(p, log)),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           log,
	}
}

// GRPCPlugin returns the go-plugin plugin that serves p, for in-memory tests
// (plugin.TestPluginGRPCConn) and custom serving.
func GRPCPlugin(p Plugin, log hclog.Logger) *hostapi.GRPCPlugin {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &hostapi.GRPCPlugin{Backend: &backend{p: p, log: log}}
}

// PrintDescription writes Describe(p) to w as indented JSON.
func PrintDescription(w io.Writer, p Plugin) error {
	b, err := json.MarshalIndent(Describe(p), "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// watchParent ends the plugin when the process that started it is gone: the host sets
// Pdeathsig on Linux, this is the backstop where it cannot.
func watchParent(log hclog.Logger) {
	ppid := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != ppid {
			log.Error("the host is gone; exiting", "host_pid", ppid)
			os.Exit(2)
		}
	}
}

type backend struct {
	p   Plugin
	log hclog.Logger

	mu         sync.Mutex
	configured []byte
}

func (b *backend) Describe(ctx context.Context) (*pluginpb.DescribeResponse, error) {
	return Describe(b.p).Proto(hostapi.ProtocolVersion), nil
}

func (b *backend) Stages() hostapi.Stages { return b.p.stages() }

func (b *backend) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.configured == nil {
		return errdefs.FailedPrecondition(fmt.Errorf("plugin %s is not configured", b.p.Name))
	}
	return nil
}

func (b *backend) Configure(ctx context.Context, config []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.configured != nil {
		if bytes.Equal(b.configured, config) {
			return nil
		}
		return errdefs.FailedPrecondition(fmt.Errorf("plugin %s is already configured; it takes its config once per process", b.p.Name))
	}
	if err := Decode(b.p.Config, config); err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("plugin %s: config: %w", b.p.Name, err))
	}
	seen := map[any]bool{}
	for _, s := range []any{b.p.Verify, b.p.Image, b.p.Merge, b.p.Security, b.p.Network, b.p.Layer, b.p.Mkdir, b.p.Register, b.p.Check} {
		su, ok := s.(Setupper)
		if !ok {
			continue
		}
		if v := reflect.ValueOf(s); v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				continue
			}
			seen[v.Pointer()] = true
		}
		if err := su.Setup(ctx, b.log); err != nil {
			if errdefs.ClassOf(err) == errdefs.Unknown {
				err = errdefs.InvalidArgument(err)
			}
			return fmt.Errorf("plugin %s: setup: %w", b.p.Name, err)
		}
	}
	b.configured = append([]byte{}, config...)
	if b.configured == nil {
		b.configured = []byte{}
	}
	return nil
}

// Decode decodes the JSON object data into cfg (a pointer to a config struct holding the
// defaults) strictly: an unknown field or a missing required field (see Schema) is an error.
// A nil cfg accepts only an empty object.
func Decode(cfg any, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if cfg == nil {
		if len(top) > 0 {
			return errors.New("this plugin takes no config")
		}
		return nil
	}
	for _, f := range Schema(cfg) {
		if _, ok := top[f.Name]; f.Required && !ok {
			return fmt.Errorf("missing required field %q", f.Name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return err
	}
	return nil
}

// Host is the host as a stage implementation sees it during one call: read access to the
// engine's containers and images, and warnings for the run. It cannot write the run's
// state: a stage's typed output is the only way to do that.
type Host interface {
	// Container looks up a container by ID, unique ID prefix or name; NotFound with the
	// engine's text ("No such container: REF") when there is none.
	Container(ctx context.Context, ref string) (*spec.Record, error)
	// Image resolves an image by reference or ID for the host's platform; NotFound "No such
	// image: REF" when there is none.
	Image(ctx context.Context, ref string) (*spec.Image, error)
	// Warn adds a warning to the run; the host appends it to the Warnings of this call's
	// output, so it reaches the create response. FailedPrecondition in a call whose output
	// has no warnings (Undo, mkdir, register).
	Warn(ctx context.Context, msg string) error
	// OpenBlob streams a blob of the engine's image store (a layer, a config) by digest;
	// NotFound when there is none. The reader must be closed, and stops working when the
	// call ends.
	OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error)
}

// HostFromContext returns the host's callbacks for the stage call whose context is ctx;
// false when the host offers none (an older host, or a call made without the host, as in
// the in-memory tests of plugintest without an environment).
func HostFromContext(ctx context.Context) (Host, bool) {
	h, ok := hostapi.HostFromContext(ctx)
	if !ok {
		return nil, false
	}
	return h, true
}
