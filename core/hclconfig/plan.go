package hclconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Plan is a resolved pipeline: the implementation, configuration and deadline of every
// stage in run order, the checks with their place, and the declared plugins.
type Plan struct {
	// Files are the files the plan was read from.
	Files []string `json:"files"`
	// StateRoot is the state_root attribute; empty when the file does not set one.
	StateRoot string        `json:"state_root,omitempty"`
	Stages    []StagePlan   `json:"stages"`
	Checks    []CheckPlan   `json:"checks"`
	Plugins   []PluginBlock `json:"plugins"`
}

// StagePlan is the resolved implementation of one stage.
type StagePlan struct {
	Stage spec.Stage `json:"stage"`
	// Use is what the file says: a built-in name or "plugin.NAME".
	Use string `json:"use"`
	// Key is the name recorded in the containers it creates (core.Impl.Key).
	Key string `json:"key"`
	// Default is set when the file has no block for the stage.
	Default bool `json:"default,omitempty"`
	// Timeout is the stage's deadline; zero for none.
	Timeout Duration `json:"timeout,omitempty"`
	// Config is the decoded configuration as JSON; empty for none.
	Config json.RawMessage `json:"config,omitempty"`
	impl   core.Impl
}

// CheckPlan is a resolved check and its place: exactly one of Before and After is set.
type CheckPlan struct {
	Name    string          `json:"name"`
	Before  spec.Stage      `json:"before,omitempty"`
	After   spec.Stage      `json:"after,omitempty"`
	Use     string          `json:"use"`
	Key     string          `json:"key"`
	Timeout Duration        `json:"timeout,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
	impl    core.Impl
}

// Duration is a time.Duration written as text ("10s").
type Duration time.Duration

// String returns the duration as time.Duration writes it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Impl returns the implementation chosen for stage st.
func (p *Plan) Impl(st spec.Stage) (core.Impl, bool) {
	for _, s := range p.Stages {
		if s.Stage == st {
			return s.impl, true
		}
	}
	return core.Impl{}, false
}

// Pipeline returns the core pipeline the plan describes. Nothing is built: the engine
// builds the implementations when it opens or reloads with the pipeline.
func (p *Plan) Pipeline() (*core.Pipeline, error) {
	out := &core.Pipeline{Stages: make(map[spec.Stage]core.Impl, len(p.Stages))}
	for _, s := range p.Stages {
		impl := s.impl
		impl.Timeout = time.Duration(s.Timeout)
		out.Stages[s.Stage] = impl
	}
	for _, c := range p.Checks {
		impl := c.impl
		name := c.Name
		if impl.New == nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("pipeline: check %q has no implementation", name))
		}
		out.Checks = append(out.Checks, core.CheckStep{Name: name, Before: c.Before, After: c.After,
			New: func(ctx context.Context, env core.Env) (core.Checker, error) {
				v, err := impl.New(ctx, env)
				if err != nil {
					return nil, err
				}
				ch, ok := v.(core.Checker)
				if !ok {
					return nil, errdefs.InvalidArgument(fmt.Errorf("check %q: implementation %q (%T) is not a checker", name, impl.Key(), v))
				}
				return ch, nil
			}})
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// WriteJSON writes the plan as indented JSON.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// WriteText writes the plan for people: the steps in run order with their implementation,
// deadline and configuration, then the plugins.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	if p.StateRoot != "" {
		fmt.Fprintf(&b, "state root: %s\n", p.StateRoot)
	}
	b.WriteString("steps, in run order:\n")
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  STEP\tIMPLEMENTATION\tRECORDED AS\tTIMEOUT\tCONFIG\n")
	for _, s := range p.steps() {
		use, key, timeout, cfg := "", "", "-", "-"
		if s.check != nil {
			use, key, cfg = s.check.Use, s.check.Key, compact(s.check.Config)
			if s.check.Timeout != 0 {
				timeout = time.Duration(s.check.Timeout).String()
			}
		} else {
			use, key, cfg = s.stage.Use, s.stage.Key, compact(s.stage.Config)
			if s.stage.Default {
				use += " (default)"
			}
			if s.stage.Timeout != 0 {
				timeout = time.Duration(s.stage.Timeout).String()
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.label, use, key, timeout, cfg)
	}
	tw.Flush()
	if len(p.Plugins) > 0 {
		b.WriteString("plugins:\n")
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, pl := range p.Plugins {
			fmt.Fprintf(tw, "  %s\t%s\tsha256:%s\n", pl.Name, pl.Path, pl.SHA256)
		}
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func compact(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return "-"
	}
	return string(raw)
}

// step is one node of the run order: a stage (or half of register) or a check.
type step struct {
	id    string // node identifier in graphs
	label string
	stage *StagePlan
	check *CheckPlan
}

// steps lists the plan in run order: each stage with the checks placed before and after
// it; register runs in two halves, its reservation after merge (the checks placed before
// register run before it) and its commit last (the checks placed after it run after that).
func (p *Plan) steps() []step {
	stages := map[spec.Stage]*StagePlan{}
	for i := range p.Stages {
		stages[p.Stages[i].Stage] = &p.Stages[i]
	}
	var out []step
	checks := func(st spec.Stage, before bool) {
		for i := range p.Checks {
			c := &p.Checks[i]
			if (before && c.Before == st) || (!before && c.After == st) {
				out = append(out, step{id: "check_" + sanitize(c.Name), label: "check " + c.Name, check: c})
			}
		}
	}
	add := func(st spec.Stage, id, label string) {
		if sp := stages[st]; sp != nil {
			out = append(out, step{id: id, label: label, stage: sp})
		}
	}
	for _, st := range spec.Stages {
		if st == spec.StageRegister {
			continue
		}
		if st == spec.StageSecurity { // the name is reserved after merge, before any effect
			checks(spec.StageRegister, true)
			add(spec.StageRegister, "register_reserve", "register (reserve)")
		}
		checks(st, true)
		add(st, string(st), string(st))
		checks(st, false)
	}
	add(spec.StageRegister, "register_commit", "register (commit)")
	checks(spec.StageRegister, false)
	return out
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
