package hclconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Registry lists what a pipeline file may name: the built-in implementations of each stage
// and the built-in checks, the default of each stage, and how to build plugin-backed
// implementations.
type Registry struct {
	// Stages maps a stage to its built-in implementations by name.
	Stages map[spec.Stage]map[string]Builtin
	// Defaults names the implementation a stage without a block runs.
	Defaults map[spec.Stage]string
	// Checks lists the built-in checks by name; the New of the Impl a check's Build returns
	// must return a core.Checker.
	Checks map[string]Builtin
	// Plugins builds plugin-backed implementations; nil when this build has no plugin host,
	// and a pipeline that uses a plugin is then refused with a diagnostic.
	Plugins PluginBuilder
}

// Builtin is one built-in implementation and its configuration schema.
type Builtin struct {
	// Schema is the struct a config block is decoded into with gohcl (hcl tags; json tags
	// for the plan), holding the defaults; nil for an implementation that takes no
	// configuration, which then refuses a config block. The loader decodes into a fresh copy;
	// a copy whose pointer implements Defaulter has ApplyDefaults called after decoding.
	Schema any
	// Validate checks a decoded config (a pointer to the Schema's type) without touching the
	// host; its diagnostics should point at the attribute at fault (gohcl's
	// attr_value_range and def_range tags give the ranges). Optional.
	Validate func(cfg any) hcl.Diagnostics
	// Build returns the implementation configured with cfg (a pointer to the Schema's type,
	// nil when Schema is nil). It must not touch the host: the work happens in Impl.New.
	// The Impl's Config should identify the configuration (ConfigID).
	Build func(cfg any) core.Impl
}

// Defaulter is implemented by config schemas that fill in defaults after decoding, so
// that the plan records the configuration in effect.
type Defaulter interface {
	ApplyDefaults()
}

// PluginBlock is a declared plugin.
type PluginBlock struct {
	Name string `json:"name"`
	// Path is the binary's path, relative to the pipeline file's directory when written as
	// a relative path.
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Range is where the block is declared.
	Range hcl.Range `json:"-"`
}

// PluginRequest asks a PluginBuilder for one use of a plugin.
type PluginRequest struct {
	Plugin PluginBlock
	// Stage is the stage the plugin implements; empty for a check.
	Stage spec.Stage
	// Check is the check's name, for a check.
	Check string
}

// PluginBuilder builds plugin-backed implementations. The plugin host implements it; it
// may launch the plugin to learn its schema (describe), and must not run any stage.
type PluginBuilder interface {
	// Spec returns the schema the plugin declares for the request's stage or check, nil
	// when it takes no configuration. An error (the plugin does not serve that stage, say)
	// becomes a diagnostic on the use attribute.
	Spec(req PluginRequest) (hcldec.Spec, error)
	// Build returns the implementation for the request, configured with config (decoded
	// against Spec; cty.NilVal without one). A check's Impl.New returns a core.Checker.
	// When the Impl's Name or Config is empty the loader sets them to "plugin.NAME" and an
	// identity derived from the binary's digest and the config.
	Build(req PluginRequest, config cty.Value) (core.Impl, error)
}

// ConfigID is the identity of a configuration for core.Impl.Config: empty when cfg encodes
// to the same JSON as def (so a default configuration keeps the bare implementation name
// containers record), otherwise the first 12 hex digits of the SHA-256 of cfg's JSON.
func ConfigID(cfg, def any) string {
	a, err := json.Marshal(cfg)
	if err != nil {
		return ""
	}
	if def != nil {
		if b, err := json.Marshal(def); err == nil && string(a) == string(b) {
			return ""
		}
	}
	return shortDigest(a)
}

func shortDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// newConfig returns a pointer to a fresh copy of schema.
func newConfig(schema any) any {
	v := reflect.ValueOf(schema)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	return p.Interface()
}

// Rebuild returns the built-in implementation name of stage st configured with config, the
// JSON of a StagePlan's Config. It is how a container is removed with the configuration that
// created it after the pipeline file changed: the caller keeps each plan's configs (they are
// content addressed by their identity) and rebuilds the implementation from them.
func Rebuild(reg Registry, st spec.Stage, name string, config json.RawMessage) (core.Impl, error) {
	b, ok := reg.Stages[st][name]
	if !ok {
		return core.Impl{}, errdefs.NotFound(fmt.Errorf("no built-in implementation %q of stage %s", name, st))
	}
	var cfg any
	if b.Schema != nil {
		cfg = newConfig(b.Schema)
		if len(config) > 0 {
			if err := json.Unmarshal(config, cfg); err != nil {
				return core.Impl{}, errdefs.InvalidArgument(fmt.Errorf("config of %s implementation %q: %w", st, name, err))
			}
		}
	}
	return b.Build(cfg), nil
}
