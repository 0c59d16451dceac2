package main

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/examples/pipelines"
	"github.com/slipwayhq/slipway/steps/standard"
)

// registry lists what pipeline files may name: the built-ins, and plugins, which are
// installed into the plugin store under the state root and described when a pipeline
// names them.
func (a *app) registry() hclconfig.Registry {
	reg := standard.Registry()
	reg.Plugins = a.pluginBuilder()
	return reg
}

// loadPlan resolves the pipeline at path (a file or a directory of *.hcl files), or the
// embedded default pipeline when path is empty. It writes every diagnostic, with a snippet
// of the source, on stderr, and fails when any is an error.
func (a *app) loadPlan(path string) (*hclconfig.Plan, error) {
	var (
		plan  *hclconfig.Plan
		diags hcl.Diagnostics
		srcs  []hclconfig.Source
		what  = "pipeline " + path
	)
	if path == "" {
		srcs = []hclconfig.Source{{Name: pipelines.DefaultName, Bytes: pipelines.Default}}
		plan, diags = hclconfig.LoadSources(".", srcs, a.registry())
		what = "the embedded default pipeline"
	} else {
		plan, diags = hclconfig.Load(path, a.registry())
	}
	if len(diags) > 0 {
		if err := hclconfig.WriteDiagnostics(a.stderr, diags, 0, false, srcs...); err != nil {
			return nil, err
		}
	}
	if diags.HasErrors() {
		n, s := len(diags.Errs()), "s"
		if n == 1 {
			s = ""
		}
		return nil, fmt.Errorf("%s is not valid: %d error%s", what, n, s)
	}
	return plan, nil
}

func (a *app) pipelineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Validate and show HCL pipeline files",
	}
	validate := &cobra.Command{
		Use:   "validate [FILE|DIR]",
		Short: "Check a pipeline file (or directory of *.hcl files) and report every problem",
		Long: "Check a pipeline file, or a directory of *.hcl files read as one pipeline, without running\n" +
			"anything: every error is reported with its file:line:col and a snippet. Without an\n" +
			"argument, the embedded default pipeline is checked.",
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			path := ""
			if len(argv) == 1 {
				path = argv[0]
			}
			if _, err := a.loadPlan(path); err != nil {
				return err
			}
			if path == "" {
				path = "the default pipeline"
			}
			fmt.Fprintf(a.stdout, "%s is valid.\n", path)
			return nil
		},
	}
	var format string
	show := &cobra.Command{
		Use:   "show [FILE|DIR]",
		Short: "Print the resolved pipeline as text, JSON, or a DOT or Mermaid graph",
		Long: "Print the resolved pipeline without running anything: the implementation, recorded key,\n" +
			"deadline and configuration of every stage in run order, the checks between them and the\n" +
			"plugins. Without an argument, the embedded default pipeline is shown.",
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			switch format {
			case "text", "json", "dot", "mermaid":
			default:
				return usageError{fmt.Errorf("invalid format %q: use text, json, dot or mermaid", format)}
			}
			path := ""
			if len(argv) == 1 {
				path = argv[0]
			}
			plan, err := a.loadPlan(path)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return plan.WriteJSON(a.stdout)
			case "dot":
				return plan.WriteGraph(a.stdout, hclconfig.DOT)
			case "mermaid":
				return plan.WriteGraph(a.stdout, hclconfig.Mermaid)
			}
			return plan.WriteText(a.stdout)
		},
	}
	show.Flags().StringVar(&format, "format", "text", "output format: text, json, dot or mermaid")
	cmd.AddCommand(validate, show)
	return cmd
}
