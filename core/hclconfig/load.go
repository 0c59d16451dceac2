package hclconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/spec"
)

// PluginPrefix starts a use value that names a plugin block: "plugin.NAME".
const PluginPrefix = "plugin."

var rootSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "state_root"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "locals"},
		{Type: "stage", LabelNames: []string{"name"}},
		{Type: "plugin", LabelNames: []string{"name"}},
		{Type: "check", LabelNames: []string{"name"}},
	},
}

var stageSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "use", Required: true}, {Name: "timeout"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "config"}},
}

var checkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "use", Required: true}, {Name: "timeout"}, {Name: "before"}, {Name: "after"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "config"}},
}

var pluginSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path", Required: true}, {Name: "sha256", Required: true}},
}

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]*$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Load reads the pipeline at path (a file, or a directory whose *.hcl files are read in
// name order as one pipeline) and resolves it against reg. It returns every problem it
// finds; the Plan is nil when any of them is an error.
func Load(path string, reg Registry) (*Plan, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read pipeline", Detail: err.Error()}}
	}
	var names []string
	dir := path
	if fi.IsDir() {
		m, err := filepath.Glob(filepath.Join(path, "*.hcl"))
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read pipeline", Detail: err.Error()}}
		}
		if len(m) == 0 {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Empty pipeline directory",
				Detail: fmt.Sprintf("The directory %s has no *.hcl file.", path)}}
		}
		sort.Strings(m)
		names = m
	} else {
		names = []string{path}
		dir = filepath.Dir(path)
	}
	srcs := make([]Source, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read pipeline", Detail: err.Error()}}
		}
		srcs = append(srcs, Source{Name: n, Bytes: b})
	}
	return LoadSources(dir, srcs, reg)
}

// Source is one pipeline file's name (as diagnostics show it) and content.
type Source struct {
	Name  string
	Bytes []byte
}

// LoadSources resolves a pipeline given as sources, for pipelines that are not files (an
// embedded default, say). Relative plugin paths and file() arguments are relative to dir.
func LoadSources(dir string, srcs []Source, reg Registry) (*Plan, hcl.Diagnostics) {
	l := &loader{reg: reg, dir: dir, plan: &Plan{Files: []string{}, Checks: []CheckPlan{}, Plugins: []PluginBlock{}}}
	var files []*hcl.File
	for _, s := range srcs {
		f, diags := hclsyntax.ParseConfig(s.Bytes, s.Name, hcl.InitialPos)
		l.diags = append(l.diags, diags...)
		if f != nil && !diags.HasErrors() {
			files = append(files, f)
		}
		l.plan.Files = append(l.plan.Files, s.Name)
	}
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	l.load(files)
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	return l.plan, l.diags
}

type loader struct {
	reg   Registry
	dir   string
	plan  *Plan
	diags hcl.Diagnostics
	ctx   *hcl.EvalContext
}

func (l *loader) errorf(rng *hcl.Range, summary, format string, args ...any) {
	l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: rng})
}

func (l *loader) load(files []*hcl.File) {
	var (
		stateRoot *hcl.Attribute
		locals    []*hcl.Block
		stages    []*hcl.Block
		plugins   []*hcl.Block
		checks    []*hcl.Block
	)
	for _, f := range files {
		content, diags := f.Body.Content(rootSchema)
		l.diags = append(l.diags, diags...)
		if a, ok := content.Attributes["state_root"]; ok {
			if stateRoot != nil {
				l.errorf(&a.NameRange, "Duplicate state_root", "state_root was already set at %s.", stateRoot.NameRange)
			} else {
				stateRoot = a
			}
		}
		for _, b := range content.Blocks {
			switch b.Type {
			case "locals":
				locals = append(locals, b)
			case "stage":
				stages = append(stages, b)
			case "plugin":
				plugins = append(plugins, b)
			case "check":
				checks = append(checks, b)
			}
		}
	}
	l.ctx = &hcl.EvalContext{Functions: functions(l.dir), Variables: map[string]cty.Value{"local": l.locals(locals)}}
	if stateRoot != nil {
		if s, ok := l.str(stateRoot); ok {
			l.plan.StateRoot = s
		}
	}
	declared := l.plugins(plugins)
	l.stages(stages, declared)
	l.checks(checks, declared)
}

// locals evaluates the locals blocks, each local once its references are known.
func (l *loader) locals(blocks []*hcl.Block) cty.Value {
	pending := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, diags := b.Body.JustAttributes()
		l.diags = append(l.diags, diags...)
		for name, a := range attrs {
			if prev, ok := pending[name]; ok {
				l.errorf(&a.NameRange, "Duplicate local value", "A local value named %q was already defined at %s.", name, prev.NameRange)
				continue
			}
			pending[name] = a
		}
	}
	vals := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					continue
				}
				if at, ok := tr[1].(hcl.TraverseAttr); ok {
					if _, waiting := pending[at.Name]; waiting {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			ctx := &hcl.EvalContext{Functions: functions(l.dir), Variables: map[string]cty.Value{"local": cty.ObjectVal(vals)}}
			v, diags := a.Expr.Value(ctx)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			vals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			for _, name := range names {
				a := pending[name]
				l.errorf(&a.NameRange, "Cycle in local values", "The local value %q refers to itself through other local values.", name)
				vals[name] = cty.DynamicVal
			}
			break
		}
	}
	return cty.ObjectVal(vals)
}

// str evaluates a that must be a known string.
func (l *loader) str(a *hcl.Attribute) (string, bool) {
	v, diags := a.Expr.Value(l.ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return "", false
	}
	if v.IsNull() || !v.IsWhollyKnown() {
		l.errorf(a.Expr.Range().Ptr(), "Invalid value", "The %s argument must be a string.", a.Name)
		return "", false
	}
	v, err := convert.Convert(v, cty.String)
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: string required.", a.Name)
		return "", false
	}
	return v.AsString(), true
}

func (l *loader) plugins(blocks []*hcl.Block) map[string]PluginBlock {
	out := map[string]PluginBlock{}
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		if prev, ok := seen[name]; ok {
			l.errorf(b.LabelRanges[0].Ptr(), "Duplicate plugin", "A plugin named %q was already declared at %s.", name, prev)
			continue
		}
		seen[name] = b.DefRange
		if !nameRE.MatchString(name) {
			l.errorf(b.LabelRanges[0].Ptr(), "Invalid plugin name", "A plugin name starts with a letter and has only letters, digits, '_' and '-'.")
			continue
		}
		content, diags := b.Body.Content(pluginSchema)
		l.diags = append(l.diags, diags...)
		p := PluginBlock{Name: name, Range: b.DefRange}
		pathAttr, sumAttr := content.Attributes["path"], content.Attributes["sha256"]
		okPath, okSum := false, false
		if pathAttr != nil {
			if p.Path, okPath = l.str(pathAttr); okPath && !filepath.IsAbs(p.Path) {
				p.Path = filepath.Join(l.dir, p.Path)
			}
		}
		if sumAttr != nil {
			if p.SHA256, okSum = l.str(sumAttr); okSum {
				p.SHA256 = strings.TrimPrefix(p.SHA256, "sha256:")
				if !sha256RE.MatchString(p.SHA256) {
					l.errorf(sumAttr.Expr.Range().Ptr(), "Invalid sha256", "The sha256 of plugin %q must be 64 lower-case hex digits.", name)
					okSum = false
				}
			}
		}
		if okPath {
			got, err := fileDigest(p.Path)
			switch {
			case err != nil:
				l.errorf(pathAttr.Expr.Range().Ptr(), "Plugin binary not found", "Cannot read the binary of plugin %q: %s.", name, err)
			case okSum && got != p.SHA256:
				l.errorf(sumAttr.Expr.Range().Ptr(), "Plugin checksum mismatch",
					"The binary %s of plugin %q has sha256 %s, not the %s this pipeline expects. If the binary was rebuilt on purpose, update the sha256.", p.Path, name, got, p.SHA256)
			}
		}
		out[name] = p
		l.plan.Plugins = append(l.plan.Plugins, p)
	}
	return out
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// use is the common part of a stage or check block.
type use struct {
	use     string
	useAttr *hcl.Attribute
	timeout Duration
	config  *hcl.Block
}

func (l *loader) common(content *hcl.BodyContent) (use, bool) {
	var u use
	ok := true
	if a := content.Attributes["use"]; a != nil {
		u.useAttr = a
		u.use, ok = l.str(a)
	} else {
		ok = false
	}
	if a := content.Attributes["timeout"]; a != nil {
		if s, good := l.str(a); good {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				l.errorf(a.Expr.Range().Ptr(), "Invalid timeout", "The timeout must be a positive duration such as \"10s\" or \"1m30s\".")
			} else {
				u.timeout = Duration(d)
			}
		}
	}
	var configs []*hcl.Block
	for _, b := range content.Blocks {
		if b.Type == "config" {
			configs = append(configs, b)
		}
	}
	if len(configs) > 1 {
		l.errorf(configs[1].DefRange.Ptr(), "Duplicate config block", "Only one config block is allowed; another was defined at %s.", configs[0].DefRange)
	}
	if len(configs) > 0 {
		u.config = configs[0]
	}
	return u, ok
}

func (l *loader) stages(blocks []*hcl.Block, plugins map[string]PluginBlock) {
	seen := map[spec.Stage]hcl.Range{}
	chosen := map[spec.Stage]StagePlan{}
	for _, b := range blocks {
		st := spec.Stage(b.Labels[0])
		if !st.Valid() {
			l.errorf(b.LabelRanges[0].Ptr(), "Unknown stage", "There is no stage %q%s. The stages are %s.", st, suggest(string(st), stageNames()), strings.Join(stageNames(), ", "))
			continue
		}
		if prev, ok := seen[st]; ok {
			l.errorf(b.LabelRanges[0].Ptr(), "Duplicate stage block", "The %s stage was already configured at %s.", st, prev)
			continue
		}
		seen[st] = b.DefRange
		content, diags := b.Body.Content(stageSchema)
		l.diags = append(l.diags, diags...)
		u, ok := l.common(content)
		if !ok {
			continue
		}
		sp := StagePlan{Stage: st, Use: u.use, Timeout: u.timeout}
		impl, cfg, ok := l.resolve(st, "", u, plugins)
		if !ok {
			continue
		}
		sp.Config, sp.impl = cfg, impl
		sp.Key = impl.Key()
		chosen[st] = sp
	}
	for _, st := range spec.Stages {
		sp, ok := chosen[st]
		if !ok {
			if _, written := seen[st]; written {
				continue // reported
			}
			var good bool
			if sp, good = l.defaultStage(st); !good {
				continue
			}
		}
		l.plan.Stages = append(l.plan.Stages, sp)
	}
}

func (l *loader) defaultStage(st spec.Stage) (StagePlan, bool) {
	name := l.reg.Defaults[st]
	b, ok := l.reg.Stages[st][name]
	if name == "" || !ok || b.Build == nil {
		l.errorf(nil, "No implementation", "The %s stage has no block and the registry has no default implementation for it.", st)
		return StagePlan{}, false
	}
	var cfg any
	if b.Schema != nil {
		cfg = newConfig(b.Schema)
		if d, ok := cfg.(Defaulter); ok {
			d.ApplyDefaults()
		}
	}
	impl := b.Build(cfg)
	impl.Stage = st
	raw, _ := configJSON(cfg)
	return StagePlan{Stage: st, Use: name, Default: true, Key: impl.Key(), Config: raw, impl: impl}, true
}

func configJSON(cfg any) (json.RawMessage, error) {
	if cfg == nil {
		return nil, nil
	}
	return json.Marshal(cfg)
}

// resolve builds the implementation a stage (st set) or check (check set) block uses.
func (l *loader) resolve(st spec.Stage, check string, u use, plugins map[string]PluginBlock) (core.Impl, json.RawMessage, bool) {
	rng := u.useAttr.Expr.Range().Ptr()
	if name, isPlugin := strings.CutPrefix(u.use, PluginPrefix); isPlugin {
		p, ok := plugins[name]
		if !ok {
			names := make([]string, 0, len(plugins))
			for n := range plugins {
				names = append(names, n)
			}
			sort.Strings(names)
			l.errorf(rng, "Undeclared plugin", "No plugin block declares %q%s; declare it with a plugin %q block giving its path and sha256.", name, suggest(name, names), name)
			return core.Impl{}, nil, false
		}
		if l.reg.Plugins == nil {
			l.errorf(rng, "Plugins not available", "This build of Slipway has no plugin host, so %q cannot be used.", u.use)
			return core.Impl{}, nil, false
		}
		return l.resolvePlugin(PluginRequest{Plugin: p, Stage: st, Check: check}, u, rng)
	}
	var (
		avail map[string]Builtin
		what  string
	)
	if check != "" {
		avail, what = l.reg.Checks, "built-in check"
	} else {
		avail, what = l.reg.Stages[st], fmt.Sprintf("built-in implementation of the %s stage", st)
	}
	b, ok := avail[u.use]
	if !ok || b.Build == nil {
		names := make([]string, 0, len(avail))
		for n := range avail {
			names = append(names, n)
		}
		sort.Strings(names)
		list := "none"
		if len(names) > 0 {
			list = strings.Join(names, ", ")
		}
		l.errorf(rng, "Unknown implementation", "There is no %s named %q%s. Available: %s; or \"plugin.NAME\" for a declared plugin.", what, u.use, suggest(u.use, names), list)
		return core.Impl{}, nil, false
	}
	var cfg any
	switch {
	case b.Schema == nil && u.config != nil:
		l.errorf(u.config.DefRange.Ptr(), "Unexpected config block", "The implementation %q takes no configuration.", u.use)
		return core.Impl{}, nil, false
	case b.Schema != nil:
		cfg = newConfig(b.Schema)
		if u.config != nil {
			diags := gohcl.DecodeBody(u.config.Body, l.ctx, cfg)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() {
				return core.Impl{}, nil, false
			}
		}
		if d, ok := cfg.(Defaulter); ok {
			d.ApplyDefaults()
		}
		if b.Validate != nil {
			diags := b.Validate(cfg)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() {
				return core.Impl{}, nil, false
			}
		}
	}
	raw, err := configJSON(cfg)
	if err != nil {
		l.errorf(rng, "Invalid configuration", "The configuration of %q cannot be recorded: %s.", u.use, err)
		return core.Impl{}, nil, false
	}
	impl := b.Build(cfg)
	impl.Stage = st
	return impl, raw, true
}

func (l *loader) resolvePlugin(req PluginRequest, u use, rng *hcl.Range) (core.Impl, json.RawMessage, bool) {
	sp, err := l.reg.Plugins.Spec(req)
	if err != nil {
		l.errorf(rng, "Plugin cannot be used here", "Plugin %q: %s.", req.Plugin.Name, err)
		return core.Impl{}, nil, false
	}
	val := cty.NilVal
	var raw json.RawMessage
	switch {
	case sp == nil && u.config != nil:
		l.errorf(u.config.DefRange.Ptr(), "Unexpected config block", "Plugin %q declares no configuration.", req.Plugin.Name)
		return core.Impl{}, nil, false
	case sp != nil:
		var body hcl.Body = hcl.EmptyBody()
		if u.config != nil {
			body = u.config.Body
		}
		v, diags := hcldec.Decode(body, sp, l.ctx)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			return core.Impl{}, nil, false
		}
		val = v
		if raw, err = ctyjson.Marshal(v, v.Type()); err != nil {
			l.errorf(rng, "Invalid configuration", "The configuration of plugin %q cannot be recorded: %s.", req.Plugin.Name, err)
			return core.Impl{}, nil, false
		}
	}
	impl, err := l.reg.Plugins.Build(req, val)
	if err != nil {
		l.errorf(rng, "Plugin cannot be used here", "Plugin %q: %s.", req.Plugin.Name, err)
		return core.Impl{}, nil, false
	}
	impl.Stage = req.Stage
	if impl.Name == "" {
		impl.Name = PluginPrefix + req.Plugin.Name
	}
	if impl.Config == "" {
		impl.Config = shortDigest(append([]byte(req.Plugin.SHA256+"\n"), raw...))
	}
	return impl, raw, true
}

func (l *loader) checks(blocks []*hcl.Block, plugins map[string]PluginBlock) {
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		if prev, ok := seen[name]; ok {
			l.errorf(b.LabelRanges[0].Ptr(), "Duplicate check", "A check named %q was already defined at %s.", name, prev)
			continue
		}
		seen[name] = b.DefRange
		content, diags := b.Body.Content(checkSchema)
		l.diags = append(l.diags, diags...)
		cp := CheckPlan{Name: name}
		placed := true
		before, after := content.Attributes["before"], content.Attributes["after"]
		switch {
		case before != nil && after != nil:
			l.errorf(after.NameRange.Ptr(), "Impossible check placement", "The check %q names both before and after; a check runs at one place.", name)
			placed = false
		case before == nil && after == nil:
			l.errorf(b.DefRange.Ptr(), "Missing check placement", "The check %q must say where it runs, with before = \"STAGE\" or after = \"STAGE\".", name)
			placed = false
		default:
			a := before
			if a == nil {
				a = after
			}
			s, ok := l.str(a)
			if !ok {
				placed = false
				break
			}
			if st := spec.Stage(s); !st.Valid() {
				l.errorf(a.Expr.Range().Ptr(), "Unknown stage", "The check %q is placed %s %q, which is not a stage%s. The stages are %s.", name, a.Name, s, suggest(s, stageNames()), strings.Join(stageNames(), ", "))
				placed = false
			} else if a == before {
				cp.Before = st
			} else {
				cp.After = st
			}
		}
		u, ok := l.common(content)
		if !ok || !placed {
			continue
		}
		cp.Use, cp.Timeout = u.use, u.timeout
		impl, cfg, ok := l.resolve("", name, u, plugins)
		if !ok {
			continue
		}
		cp.Config, cp.impl, cp.Key = cfg, impl, impl.Key()
		l.plan.Checks = append(l.plan.Checks, cp)
	}
}

func stageNames() []string {
	out := make([]string, len(spec.Stages))
	for i, s := range spec.Stages {
		out[i] = string(s)
	}
	return out
}

// suggest returns ` (did you mean "x"?)` for the closest of names, or "".
func suggest(given string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := levenshtein.Distance(given, n, nil); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
