// Package policycheck is an example check plugin for Slipway: placed before a stage, it
// vetoes creates by label. A container is refused (FailedPrecondition, with the reason) when
// it carries the label policy.deny=true, or a label the config denies, or lacks one of the
// labels the config requires; labels the config warns about add a warning to the create
// instead.
//
// Labels are read from the merged config (the request's labels and the image's), so a check
// placed before or after any stage from "security" on sees them all; placed earlier, it sees
// the request's labels only.
//
// The binary is cmd/policycheck; see README.md for how an operator builds, installs and
// selects it.
package policycheck

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Config is the plugin's config.
type Config struct {
	// Deny maps a label to the value that refuses a create; "*" refuses any value.
	// policy.deny=true always refuses.
	Deny map[string]string `json:"deny,omitempty" hcl:"deny,optional" doc:"label => value that refuses a create (\"*\": any value), besides policy.deny=true"`
	// Require lists labels every container must carry.
	Require []string `json:"require,omitempty" hcl:"require,optional" doc:"labels every container must carry"`
	// Warn lists labels whose presence adds a warning.
	Warn []string `json:"warn,omitempty" hcl:"warn,optional" doc:"labels whose presence adds a warning to the create"`
}

// DenyLabel refuses any container that carries it with the value "true".
const DenyLabel = "policy.deny"

// Check is the check step.
type Check struct {
	Config Config
	log    hclog.Logger
}

var _ core.Checker = (*Check)(nil)

// New returns a check with the default config: it refuses policy.deny=true only.
func New() *Check { return &Check{} }

// Setup checks the config.
func (c *Check) Setup(ctx context.Context, log hclog.Logger) error {
	c.log = log
	for k := range c.Config.Deny {
		if strings.TrimSpace(k) == "" {
			return errdefs.InvalidArgument(errors.New("policycheck: deny has an empty label"))
		}
	}
	for _, k := range c.Config.Require {
		if strings.TrimSpace(k) == "" {
			return errdefs.InvalidArgument(errors.New("policycheck: require has an empty label"))
		}
	}
	return nil
}

func labels(rec *spec.Record) map[string]string {
	switch {
	case rec.Merged != nil && rec.Merged.Config != nil:
		return rec.Merged.Config.Labels
	case rec.Request != nil && rec.Request.Config != nil:
		return rec.Request.Config.Labels
	}
	return nil
}

// Check refuses the create when a label denies it or a required one is missing.
func (c *Check) Check(ctx context.Context, rec *spec.Record) ([]string, error) {
	ls := labels(rec)
	var why []string
	if ls[DenyLabel] == "true" {
		why = append(why, fmt.Sprintf("label %s=true is denied", DenyLabel))
	}
	keys := make([]string, 0, len(c.Config.Deny))
	for k := range c.Config.Deny {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		want := c.Config.Deny[k]
		if v, ok := ls[k]; ok && (want == "*" || v == want) {
			why = append(why, fmt.Sprintf("label %s=%s is denied", k, v))
		}
	}
	for _, k := range c.Config.Require {
		if _, ok := ls[k]; !ok {
			why = append(why, fmt.Sprintf("required label %s is missing", k))
		}
	}
	if len(why) > 0 {
		if c.log != nil {
			c.log.Info("create refused", "container", rec.ID, "reasons", strings.Join(why, "; "))
		}
		return nil, errdefs.FailedPrecondition(fmt.Errorf("policy refuses the container: %s", strings.Join(why, "; ")))
	}
	var warns []string
	for _, k := range c.Config.Warn {
		if v, ok := ls[k]; ok {
			warns = append(warns, fmt.Sprintf("policy: label %s=%s", k, v))
		}
	}
	return warns, nil
}
