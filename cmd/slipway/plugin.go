package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/plugins/host"
)

// Plugin binaries live in the content-addressed store <root>/plugins (host.Store): a
// pipeline's plugin blocks are installed there when the pipeline is loaded, and launched from
// there; slipway plugin install puts one there on purpose (and pins it); each container
// records the digest of every plugin that created it, and is removed with that binary.

var (
	buildersMu sync.Mutex
	builders   = map[string]*host.Builder{}
)

// pluginBuilder returns the plugin builder of the state root, one per root for the life of
// the process, so that the binaries and configs of every pipeline loaded (at start and at
// each reload) are known to the garbage collection.
func (a *app) pluginBuilder() *host.Builder {
	root := a.root
	buildersMu.Lock()
	defer buildersMu.Unlock()
	b := builders[root]
	if b == nil {
		b = host.NewBuilder(host.NewStore(root), a.log)
		builders[root] = b
	}
	return b
}

// pluginResolver builds the plugin implementation a container recorded
// ("plugin:NAME@sha256:HEX@CONFIG") from the binary and config in root's plugin store.
func (a *app) pluginResolver(root string) func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
	return host.Resolver(host.NewStore(root), a.log)
}

// chainResolvers returns a core.Options.Resolve that asks each of rs in turn.
func chainResolvers(rs ...func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool)) func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
	return func(ctx context.Context, st spec.Stage, key string) (core.Impl, bool) {
		for _, r := range rs {
			if r == nil {
				continue
			}
			if impl, ok := r(ctx, st, key); ok {
				return impl, true
			}
		}
		return core.Impl{}, false
	}
}

// pluginGC removes from the plugin store the binaries and configs that no container, no
// pin (slipway plugin install) and no pipeline loaded by this process uses. Call it once
// right after core.Open, before the first run. It only logs failures.
func (a *app) pluginGC(ctx context.Context, e *core.Engine) {
	var keep host.Keeper
	buildersMu.Lock()
	b := builders[a.root]
	buildersMu.Unlock()
	if b != nil && b.Store().Dir() == host.NewStore(e.Root()).Dir() {
		keep = b
	}
	if _, _, err := host.CollectGarbage(ctx, host.NewStore(e.Root()), e, keep, a.log); err != nil {
		a.log.Error("plugin store garbage collection failed", "error", err)
	}
}

func (a *app) pluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Manage the stage plugins in the plugin store",
		Long: "Stage plugins are binaries kept in the content-addressed store under the state root,\n" +
			"as <root>/plugins/NAME-SHA256, never changed once there. A pipeline file selects a\n" +
			"plugin by path and sha256; the binary is copied into the store when the pipeline is\n" +
			"loaded and always launched from there. Each container records the digest of every\n" +
			"plugin that created it and is removed with exactly that binary.",
	}
	cmd.AddCommand(a.pluginInstallCmd(), a.pluginLsCmd(), a.pluginRmCmd(), a.pluginDescribeCmd())
	return cmd
}

func (a *app) pluginInstallCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "install [OPTIONS] PATH",
		Short: "Copy a plugin binary into the plugin store and keep it there",
		Long: "Copy the plugin binary at PATH into the plugin store, check that it is a Slipway plugin\n" +
			"(it is launched once and asked to describe itself) and pin it: an installed plugin is\n" +
			"kept until slipway plugin rm, even when no pipeline or container uses it.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if name == "" {
				name = strings.ToLower(filepath.Base(argv[0]))
			}
			store := host.NewStore(a.root)
			existed := map[string]bool{}
			if all, err := store.List(); err == nil {
				for _, in := range all {
					existed[in.Path] = true
				}
			}
			in, err := store.Install(cmd.Context(), name, argv[0])
			if err != nil {
				return err
			}
			d, err := host.Describe(cmd.Context(), store.Ref(in.Name, in.Digest), a.log)
			if err != nil {
				if !existed[in.Path] {
					os.Remove(in.Path)
				}
				return fmt.Errorf("%s is not a usable Slipway plugin: %w", argv[0], err)
			}
			if err := store.Pin(in.Name, in.Digest); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Installed %s %s %s (%s; serves %s)\n", in.Name, in.Digest, units.HumanSize(float64(in.Size)), d.Version, strings.Join(d.Stages, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name in the store; the file name when empty")
	return cmd
}

func (a *app) pluginLsCmd() *cobra.Command {
	var noTrunc, quiet bool
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List the plugin binaries in the store and the containers that use them",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				store := host.NewStore(e.Root())
				all, err := store.List()
				if err != nil {
					return err
				}
				refs, err := host.Referenced(ctx, e)
				if err != nil {
					return err
				}
				if quiet {
					for _, in := range all {
						fmt.Fprintln(a.stdout, in.Digest)
					}
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 8, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tCONTAINERS\tPINNED")
				for _, in := range all {
					dgst := in.Digest
					if !noTrunc {
						dgst = dgst[:len("sha256:")+12]
					}
					pinned := "no"
					if store.Pinned(in) {
						pinned = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", in.Name, dgst, units.HumanSize(float64(in.Size)), refs.Count(in), pinned)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "show full digests")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show digests")
	return cmd
}

// findPlugins returns the installed binaries ref names: a digest ("sha256:HEX", HEX or a
// prefix of at least 12 digits), NAME@DIGEST, or a name (every binary of that name).
func findPlugins(store *host.Store, ref string) ([]host.Installed, error) {
	if n, d, ok := strings.Cut(ref, "@"); ok {
		in, err := store.Find(d)
		if err != nil {
			return nil, err
		}
		if in.Name != n {
			return nil, errdefs.NotFound(fmt.Errorf("no such plugin: %s (digest %s is installed as %s)", ref, in.Digest, in.Name))
		}
		return []host.Installed{in}, nil
	}
	all, err := store.List()
	if err != nil {
		return nil, err
	}
	var out []host.Installed
	for _, in := range all {
		if in.Name == ref {
			out = append(out, in)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	in, err := store.Find(ref)
	if errdefs.IsInvalidArgument(err) && len(strings.TrimPrefix(ref, "sha256:")) < 12 {
		return nil, errdefs.NotFound(fmt.Errorf("no such plugin: %s", ref))
	}
	if err != nil {
		return nil, err
	}
	return []host.Installed{in}, nil
}

func (a *app) pluginRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rm NAME|DIGEST [NAME|DIGEST...]",
		Aliases: []string{"remove"},
		Short:   "Remove plugin binaries that no container uses",
		Long: "Remove plugin binaries from the store: NAME removes every binary of that name,\n" +
			"DIGEST (or NAME@DIGEST) one. A binary that a container was created with is refused\n" +
			"(Conflict): the container is removed with it. Remove those containers first.",
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				store := host.NewStore(e.Root())
				refs, err := host.Referenced(ctx, e)
				if err != nil {
					return err
				}
				var errs []error
				for _, ref := range argv {
					ins, err := findPlugins(store, ref)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					for _, in := range ins {
						if n := refs.Count(in); n > 0 {
							errs = append(errs, errdefs.Conflict(fmt.Errorf("plugin %s (%s) is in use by %d container(s); remove the containers created with it first", in.Name, in.Digest, n)))
							continue
						}
						if refs.Unknown {
							errs = append(errs, errdefs.Conflict(fmt.Errorf("plugin %s (%s) may be needed to finish the undo of a failed run; run slipway recover first", in.Name, in.Digest)))
							continue
						}
						if err := store.Delete(in); err != nil {
							errs = append(errs, err)
							continue
						}
						fmt.Fprintf(a.stdout, "Removed %s %s\n", in.Name, in.Digest)
					}
				}
				return errors.Join(errs...)
			})
		},
	}
	return cmd
}

func (a *app) pluginDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe PATH|NAME|DIGEST",
		Short: "Print what a plugin serves, its versions and its config schema, as JSON",
		Long: "Launch the plugin (a file, or a binary in the store by name or digest), ask it to\n" +
			"describe itself and print the answer as JSON: its stages, versions, capabilities and\n" +
			"config schema.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ref, err := a.describeRef(argv[0])
			if err != nil {
				return err
			}
			d, err := host.Describe(cmd.Context(), ref, a.log)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(describeOut{d, ref.Path, "sha256:" + ref.SHA256}, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s\n", b)
			return nil
		},
	}
	return cmd
}

// describeOut is a plugin's description with where its binary is.
type describeOut struct {
	hostapi.Description
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// describeRef resolves the argument of plugin describe: an existing file (or any argument
// with a slash) is a path, anything else a name or digest in the store.
func (a *app) describeRef(arg string) (host.PluginRef, error) {
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() || strings.Contains(arg, "/") {
		if err != nil {
			return host.PluginRef{}, errdefs.NotFound(fmt.Errorf("plugin binary %s: %w", arg, err))
		}
		sum, err := fileSHA256(arg)
		if err != nil {
			return host.PluginRef{}, err
		}
		name := strings.ToLower(filepath.Base(arg))
		if !validPluginName(name) {
			name = "plugin"
		}
		return host.PluginRef{Name: name, Path: arg, SHA256: sum}, nil
	}
	ins, err := findPlugins(host.NewStore(a.root), arg)
	if err != nil {
		return host.PluginRef{}, err
	}
	if len(ins) > 1 {
		var ds []string
		for _, in := range ins {
			ds = append(ds, in.Digest)
		}
		sort.Strings(ds)
		return host.PluginRef{}, errdefs.InvalidArgument(fmt.Errorf("%d binaries are installed as %s; name one as %s@DIGEST: %s", len(ins), arg, arg, strings.Join(ds, ", ")))
	}
	return host.NewStore(a.root).Ref(ins[0].Name, ins[0].Digest), nil
}

func validPluginName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", errdefs.NotFound(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", errdefs.Internal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
