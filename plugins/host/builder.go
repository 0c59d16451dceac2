package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/internal/fsutil"
)

// Builder builds the plugin-backed implementations of HCL pipelines (it implements
// hclconfig.PluginBuilder). A pipeline names a plugin by its path and sha256; the Builder
// installs that binary into the Store (so that it is launched from the store, never from
// the user's path, and stays there for removing the containers it creates), launches it
// once to learn its config schema, and turns the schema into an hcldec.Spec, so that the
// host decodes the user's config block and reports errors at their position.
//
// Build records each config it is given in the store (see Store.SaveConfig): the
// implementation key a container records, "plugin:NAME@sha256:HEX@CONFIG", then names
// both the binary and the config, and Resolver finds both again to remove the container
// after the pipeline moved on or the engine restarted.
type Builder struct {
	store *Store
	log   hclog.Logger

	mu        sync.Mutex
	installed map[string]bool // "NAME@HEX" installed by this Builder
	descs     map[string]hostapi.Description
	configs   map[string]bool // config IDs saved by this Builder
}

var _ hclconfig.PluginBuilder = (*Builder)(nil)

// NewBuilder returns a Builder that installs into store; log receives the plugins' logs
// while they describe themselves.
func NewBuilder(store *Store, log hclog.Logger) *Builder {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Builder{store: store, log: log, installed: map[string]bool{}, descs: map[string]hostapi.Description{}, configs: map[string]bool{}}
}

// Store returns the store the Builder installs into.
func (b *Builder) Store() *Store { return b.store }

// UsesBinary reports whether this Builder installed the binary of name with digest dgst
// ("sha256:HEX" or HEX) for a pipeline: what the pipelines loaded by this process use,
// which a garbage collection must keep.
func (b *Builder) UsesBinary(name, dgst string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.installed[name+"@"+strings.TrimPrefix(dgst, "sha256:")]
}

// UsesConfig reports whether this Builder saved the config with that ID.
func (b *Builder) UsesConfig(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.configs[id]
}

// install copies the plugin's binary into the store, unless the store has it already
// intact, and returns the reference to the stored copy.
func (b *Builder) install(p hclconfig.PluginBlock) (PluginRef, error) {
	if !nameRE.MatchString(p.Name) {
		return PluginRef{}, fmt.Errorf("the plugin store names plugins with lower-case letters, digits, '_', '-' and '.' only; rename the plugin block")
	}
	sha := strings.TrimPrefix(strings.ToLower(p.SHA256), "sha256:")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.store.Verify(p.Name, sha) != nil {
		in, err := b.store.Install(context.Background(), p.Name, p.Path)
		if err != nil {
			return PluginRef{}, err
		}
		if got := strings.TrimPrefix(in.Digest, "sha256:"); got != sha {
			return PluginRef{}, errdefs.FailedPrecondition(fmt.Errorf("the binary %s has sha256 %s, not the %s the pipeline expects (it changed while the pipeline was read); refusing it", p.Path, got, sha))
		}
	}
	b.installed[p.Name+"@"+sha] = true
	return b.store.Ref(p.Name, sha), nil
}

// describe returns what the plugin serves, asking it once per digest.
func (b *Builder) describe(ref PluginRef) (hostapi.Description, error) {
	b.mu.Lock()
	d, ok := b.descs[ref.digest()]
	b.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := Describe(context.Background(), ref, b.log)
	if err != nil {
		return hostapi.Description{}, err
	}
	b.mu.Lock()
	b.descs[ref.digest()] = d
	b.mu.Unlock()
	return d, nil
}

func reqStage(req hclconfig.PluginRequest) string {
	if req.Stage == "" {
		return hostapi.StageCheck
	}
	return string(req.Stage)
}

// Spec installs and describes the plugin and returns the hcldec spec of its config schema;
// nil when it declares none.
func (b *Builder) Spec(req hclconfig.PluginRequest) (hcldec.Spec, error) {
	ref, err := b.install(req.Plugin)
	if err != nil {
		return nil, err
	}
	d, err := b.describe(ref)
	if err != nil {
		return nil, err
	}
	if st := reqStage(req); !d.Serves(st) {
		what := "the " + st + " stage"
		if st == hostapi.StageCheck {
			what = "check steps"
		}
		return nil, fmt.Errorf("%s %s does not serve %s; it serves: %s", d.Name, d.Version, what, strings.Join(d.Stages, ", "))
	}
	if len(d.ConfigSchema) == 0 {
		return nil, nil
	}
	return SchemaSpec(d.ConfigSchema)
}

// Build returns the implementation of the request's stage (or check) by the stored binary,
// configured with config, and saves the config in the store under its ID.
func (b *Builder) Build(req hclconfig.PluginRequest, config cty.Value) (core.Impl, error) {
	ref, err := b.install(req.Plugin)
	if err != nil {
		return core.Impl{}, err
	}
	raw := []byte("{}")
	if config != cty.NilVal && !config.IsNull() {
		if !config.IsWhollyKnown() {
			return core.Impl{}, errors.New("the config has values that are not known")
		}
		if raw, err = ctyjson.Marshal(config, config.Type()); err != nil {
			return core.Impl{}, err
		}
	}
	id, canon, err := b.store.SaveConfig(raw)
	if err != nil {
		return core.Impl{}, err
	}
	b.mu.Lock()
	b.configs[id] = true
	b.mu.Unlock()
	ref.Config = canon
	if req.Stage == "" {
		cs := CheckStep(req.Check, "", "", ref)
		return core.Impl{Name: ImplName(ref.Name, ref.digest()), Config: id, New: func(ctx context.Context, env core.Env) (any, error) {
			return cs.New(ctx, env)
		}}, nil
	}
	impl := Impl(req.Stage, ref)
	impl.Config = id
	return impl, nil
}

// SchemaSpec turns a plugin's config schema into an hcldec spec: a field of a scalar, list,
// map or any type is an attribute (with its default, when it has one); an object is a
// block, a list of objects repeated blocks, and a map of objects blocks labelled with the
// key.
func SchemaSpec(fields []hostapi.Field) (hcldec.Spec, error) {
	obj := hcldec.ObjectSpec{}
	for _, f := range fields {
		s, err := fieldSpec(f)
		if err != nil {
			return nil, fmt.Errorf("config field %q: %w", f.Name, err)
		}
		obj[f.Name] = s
	}
	return obj, nil
}

var typeRE = regexp.MustCompile(`^(list|map)\((.*)\)$`)

func fieldSpec(f hostapi.Field) (hcldec.Spec, error) {
	if f.Name == "" {
		return nil, errors.New("no name")
	}
	kind, elem := "", f.Type
	if m := typeRE.FindStringSubmatch(f.Type); m != nil {
		kind, elem = m[1], m[2]
	}
	if elem == "object" && len(f.Fields) > 0 && !strings.Contains(elem, "(") {
		nested, err := SchemaSpec(f.Fields)
		if err != nil {
			return nil, err
		}
		switch kind {
		case "list":
			return &hcldec.BlockListSpec{TypeName: f.Name, Nested: nested}, nil
		case "map":
			return &hcldec.BlockMapSpec{TypeName: f.Name, LabelNames: []string{"name"}, Nested: nested}, nil
		}
		return &hcldec.BlockSpec{TypeName: f.Name, Nested: nested, Required: f.Required}, nil
	}
	ty, err := ctyType(f.Type, f.Fields)
	if err != nil {
		return nil, err
	}
	attr := &hcldec.AttrSpec{Name: f.Name, Type: ty, Required: f.Required}
	if len(f.Default) == 0 || f.Required {
		return attr, nil
	}
	dt := ty
	if ty == cty.DynamicPseudoType {
		if dt, err = ctyjson.ImpliedType(f.Default); err != nil {
			return nil, fmt.Errorf("default: %w", err)
		}
	}
	def, err := ctyjson.Unmarshal(f.Default, dt)
	if err != nil {
		return nil, fmt.Errorf("default %s: %w", f.Default, err)
	}
	return &hcldec.DefaultSpec{Primary: attr, Default: &hcldec.LiteralSpec{Value: def}}, nil
}

func ctyType(t string, fields []hostapi.Field) (cty.Type, error) {
	switch t {
	case "string":
		return cty.String, nil
	case "number":
		return cty.Number, nil
	case "bool":
		return cty.Bool, nil
	case "any", "":
		return cty.DynamicPseudoType, nil
	case "object":
		if len(fields) == 0 {
			return cty.DynamicPseudoType, nil
		}
		attrs := map[string]cty.Type{}
		var optional []string
		for _, f := range fields {
			ft, err := ctyType(f.Type, f.Fields)
			if err != nil {
				return cty.NilType, err
			}
			attrs[f.Name] = ft
			if !f.Required {
				optional = append(optional, f.Name)
			}
		}
		return cty.ObjectWithOptionalAttrs(attrs, optional), nil
	}
	if m := typeRE.FindStringSubmatch(t); m != nil {
		et, err := ctyType(m[2], fields)
		if err != nil {
			return cty.NilType, err
		}
		if m[1] == "list" {
			return cty.List(et), nil
		}
		return cty.Map(et), nil
	}
	return cty.NilType, fmt.Errorf("unknown type %q", t)
}

// canonicalConfig returns the JSON object raw with null members left out (an attribute the
// user did not set keeps the plugin's default) and keys sorted.
func canonicalConfig(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("plugin config: %w", err))
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errdefs.InvalidArgument(errors.New("plugin config: not a JSON object"))
	}
	return json.Marshal(dropNulls(v))
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = dropNulls(e)
		}
	case []any:
		for i := range x {
			x[i] = dropNulls(x[i])
		}
	}
	return v
}

// ConfigID is the identity of a canonical plugin config: the first 12 hex digits of its
// SHA-256, as hclconfig.ConfigID.
func ConfigID(canon []byte) string {
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:6])
}

var configIDRE = regexp.MustCompile(`^[0-9a-f]{12}$`)

// ConfigDir returns the directory of the saved configs, <root>/plugins/configs.
func (s *Store) ConfigDir() string { return filepath.Join(s.dir, "configs") }

// SaveConfig records the plugin config raw (a JSON object) as <root>/plugins/configs/ID.json
// and returns its ID and canonical form. The file is written once, synced, and never
// changed: a container whose key names the ID is removed with exactly that config.
func (s *Store) SaveConfig(raw []byte) (id string, canon []byte, err error) {
	canon, err = canonicalConfig(raw)
	if err != nil {
		return "", nil, err
	}
	id = ConfigID(canon)
	p := filepath.Join(s.ConfigDir(), id+".json")
	if have, err := os.ReadFile(p); err == nil {
		if !bytes.Equal(have, canon) {
			return "", nil, errdefs.Conflict(fmt.Errorf("plugin config %s: the stored config differs from %s (an ID collision); refusing to replace it", id, canon))
		}
		return id, canon, nil
	}
	if err := os.MkdirAll(s.ConfigDir(), 0o700); err != nil {
		return "", nil, errdefs.Internal(fmt.Errorf("save plugin config: %w", err))
	}
	if err := writeFileSync(s.ConfigDir(), p, canon, 0o600); err != nil {
		return "", nil, errdefs.Internal(fmt.Errorf("save plugin config: %w", err))
	}
	return id, canon, nil
}

// Config returns the saved config with that ID. A missing one is NotFound; one whose content
// does not have that ID (it was changed) is FailedPrecondition.
func (s *Store) Config(id string) ([]byte, error) {
	if !configIDRE.MatchString(id) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("plugin config ID %q is not 12 hex digits", id))
	}
	b, err := os.ReadFile(filepath.Join(s.ConfigDir(), id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound(fmt.Errorf("plugin config %s is not in the store %s", id, s.ConfigDir()))
	}
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("plugin config %s: %w", id, err))
	}
	if got := ConfigID(b); got != id {
		return nil, errdefs.FailedPrecondition(fmt.Errorf("plugin config %s was changed (its content has ID %s); refusing it", id, got))
	}
	return b, nil
}

// Configs returns the IDs of the saved configs.
func (s *Store) Configs() ([]string, error) {
	ents, err := os.ReadDir(s.ConfigDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errdefs.Internal(err)
	}
	var out []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && configIDRE.MatchString(id) {
			out = append(out, id)
		}
	}
	return out, nil
}

func writeFileSync(dir, path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(dir, ".config-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	_ = fsutil.SyncDir(dir) // best effort: the file is in place
	return nil
}

// ParseKey parses an implementation key of a plugin: "plugin:NAME@sha256:HEX" or
// "plugin:NAME@sha256:HEX@CONFIG".
func ParseKey(key string) (name, sha, config string, ok bool) {
	base, cfg := key, ""
	if i := strings.LastIndex(key, "@"); i > 0 && !strings.HasPrefix(key[i:], "@sha256:") {
		base, cfg = key[:i], key[i+1:]
		if !configIDRE.MatchString(cfg) {
			return "", "", "", false
		}
	}
	name, sha, ok = ParseImplName(base)
	return name, sha, cfg, ok
}

// Resolver returns a core.Options.Resolve function that builds the implementation of a
// plugin key ("plugin:NAME@sha256:HEX[@CONFIG]") from the stored binary and the stored
// config, so that a container is removed with the very plugin and config that created it
// after the pipeline switched to another implementation, or after a restart, or after the
// plugin's original file was deleted. Any other key is not resolved. A binary or config
// missing from the store (or changed) fails when the implementation is built, naming it.
func Resolver(store *Store, log hclog.Logger) func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
	return func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
		name, sha, cfgID, ok := ParseKey(key)
		if !ok || !st.Valid() {
			return core.Impl{}, false
		}
		ref := store.Ref(name, sha)
		impl := Impl(st, ref)
		impl.Config = cfgID
		impl.New = func(ctx context.Context, env core.Env) (any, error) {
			r := ref
			if cfgID != "" {
				b, err := store.Config(cfgID)
				if err != nil {
					return nil, fmt.Errorf("plugin %s: %w", name, err)
				}
				r.Config = b
			}
			if err := store.Verify(name, sha); err != nil {
				return nil, fmt.Errorf("plugin %s: the stored binary that created the container: %w", name, err)
			}
			if log != nil {
				log.Info("plugin resolved from the store to undo with", "stage", string(st), "key", key)
			}
			return New(ctx, st, r, env.Logger)
		}
		return impl, true
	}
}
