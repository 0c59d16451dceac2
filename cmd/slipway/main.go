// Command slipway creates containers through Slipway's eight-stage pipeline: it loads images,
// creates, lists, inspects and removes containers, mounts their root filesystems, and
// recovers runs that a crashed process left half-done.
//
// Exit status: 0 on success, 125 for bad flags or arguments, 1 when the engine refuses or
// fails, with "Error: MESSAGE" on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/hclconfig"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/steps/layer/snapshot"
	"github.com/slipwayhq/slipway/steps/standard"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError marks a bad flag or argument: exit status 125, as docker.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// app holds what every command shares.
type app struct {
	root        string
	logLevel    string
	snapshotter string
	pipeline    string
	// rootSet and snapshotterSet say whether the flags were given: a pipeline file's
	// state_root and layer stage apply only where they were not.
	rootSet, snapshotterSet bool
	stdin                   io.Reader
	stdout                  io.Writer
	stderr                  io.Writer
	log                     hclog.Logger
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.command()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "Error: %s\n", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return 125
	}
	return 1
}

func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "Create containers through a pipeline of replaceable stages",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			lvl := hclog.LevelFromString(a.logLevel)
			if lvl == hclog.NoLevel {
				return usageError{fmt.Errorf("invalid log level %q: use trace, debug, info, warn or error", a.logLevel)}
			}
			a.log = hclog.New(&hclog.LoggerOptions{Name: "slipway", Level: lvl, Output: a.stderr})
			a.rootSet = cmd.Flags().Changed("root") || os.Getenv("SLIPWAY_ROOT") != ""
			a.snapshotterSet = cmd.Flags().Changed("snapshotter")
			return nil
		},
	}
	defRoot := os.Getenv("SLIPWAY_ROOT")
	if defRoot == "" {
		defRoot = core.DefaultRoot()
	}
	root.PersistentFlags().StringVar(&a.root, "root", defRoot, "state root (env SLIPWAY_ROOT)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	root.PersistentFlags().StringVar(&a.snapshotter, "snapshotter", "auto", "snapshotter: auto, overlayfs or native")
	root.PersistentFlags().StringVar(&a.pipeline, "pipeline", os.Getenv("SLIPWAY_PIPELINE"), "HCL pipeline file or directory (env SLIPWAY_PIPELINE); the built-in default pipeline when empty")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.createCmd(), a.lsCmd(), a.inspectCmd(), a.rmCmd(), a.mountCmd(), a.umountCmd(),
		a.recoverCmd(), a.eventsCmd(), a.imageCmd(), a.versionCmd(),
		a.serveCmd(), a.pipelineCmd(), a.pluginCmd(), a.volumeCmd())
	return root
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{fmt.Errorf("%q %s.\nSee '%s --help'", cmd.CommandPath(), strings.TrimSuffix(err.Error(), "."), cmd.CommandPath())}
		}
		return nil
	}
}

// open opens the engine with the pipeline of --pipeline, or the built-in default.
func (a *app) open(ctx context.Context) (*core.Engine, error) {
	o, err := a.options()
	if err != nil {
		return nil, err
	}
	e, err := core.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	a.pluginGC(ctx, e) // unreferenced plugin binaries go only at start-up
	return e, nil
}

// options are the engine options of every command: the pipeline of --pipeline (or the
// built-in default, which examples/pipelines/default.hcl describes), the root, the logger.
func (a *app) options() (core.Options, error) {
	switch a.snapshotter {
	case "auto", "overlayfs", "native":
	default:
		return core.Options{}, usageError{fmt.Errorf("invalid snapshotter %q: use auto, overlayfs or native", a.snapshotter)}
	}
	o := standard.Options(standard.Config{Snapshotter: a.snapshotter})
	o.Root = a.root
	o.Logger = a.log
	o.Hook = testHook()
	if a.pipeline != "" {
		p, plan, err := a.pipelineFrom(a.pipeline)
		if err != nil {
			return core.Options{}, err
		}
		if plan.StateRoot != "" && !a.rootSet && plan.StateRoot != a.root {
			// The file names the state root: load it again there, so that its plugins are
			// installed into that root's plugin store.
			a.root = plan.StateRoot
			if p, plan, err = a.pipelineFrom(a.pipeline); err != nil {
				return core.Options{}, err
			}
		}
		o.Root, o.Pipeline = a.root, p
		if err := saveConfigs(o.Root, plan); err != nil {
			return core.Options{}, err
		}
	}
	// Containers are removed with the implementations recorded at their creation, rebuilt
	// from the configurations and plugin binaries kept then, whatever the pipeline is now.
	o.Resolve = chainResolvers(a.builtinResolver(o.Root), a.pluginResolver(o.Root))
	return o, nil
}

// pipelineFrom loads a pipeline file or directory; --snapshotter, when given, overrides its
// layer stage.
func (a *app) pipelineFrom(path string) (*core.Pipeline, *hclconfig.Plan, error) {
	plan, err := a.loadPlan(path)
	if err != nil {
		return nil, nil, errdefs.InvalidArgument(err)
	}
	p, err := plan.Pipeline()
	if err != nil {
		return nil, nil, err
	}
	if a.snapshotterSet {
		q := p.With(snapshot.Impl(snapshot.WithSnapshotter(a.snapshotter)))
		p = &q
	}
	return p, plan, nil
}

// testHook lets the crash tests stop the process at an exact stage boundary: with
// SLIPWAY_TEST_PAUSE=op:phase:stage (for example create:after:layer) the process prints
// "PAUSED op:phase:stage" on stderr there and waits to be killed.
func testHook() func(ctx context.Context, op string, st spec.Stage, phase string) {
	at := os.Getenv("SLIPWAY_TEST_PAUSE")
	if at == "" {
		return nil
	}
	// A point may name the Nth time it is reached (register#2 is the commit; #1 the
	// name reservation).
	want := 1
	if i := strings.LastIndex(at, "#"); i >= 0 {
		if n, err := strconv.Atoi(at[i+1:]); err == nil && n > 0 {
			want, at = n, at[:i]
		}
	}
	var mu sync.Mutex
	seen := 0
	return func(ctx context.Context, op string, st spec.Stage, phase string) {
		if op+":"+phase+":"+string(st) != at {
			return
		}
		mu.Lock()
		seen++
		hit := seen == want
		mu.Unlock()
		if hit {
			fmt.Fprintf(os.Stderr, "PAUSED %s\n", at)
			for {
				time.Sleep(time.Hour)
			}
		}
	}
}

// withEngine opens the engine, runs f and closes the engine.
func (a *app) withEngine(cmd *cobra.Command, f func(ctx context.Context, e *core.Engine) error) error {
	ctx := cmd.Context()
	e, err := a.open(ctx)
	if err != nil {
		return err
	}
	ferr := f(ctx, e)
	if cerr := e.Close(); cerr != nil && ferr == nil {
		ferr = cerr
	}
	return ferr
}
