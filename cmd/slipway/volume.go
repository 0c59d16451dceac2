package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/moby/moby/api/types/volume"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/volumes"
)

func (a *app) volumeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%q needs a subcommand: create, ls, inspect, rm or prune", cmd.CommandPath())}
		}}
	cmd.AddCommand(a.volumeCreateCmd(), a.volumeLsCmd(), a.volumeInspectCmd(), a.volumeRmCmd(), a.volumePruneCmd())
	return cmd
}

// withVolumes runs f with the engine's volume store, the one its mkdir stage uses.
func (a *app) withVolumes(cmd *cobra.Command, f func(ctx context.Context, s *volumes.Store) error) error {
	return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
		s, err := volumes.Open(ctx, e.Env())
		if err != nil {
			return err
		}
		return f(ctx, s)
	})
}

// volumeOf renders a volume as docker volume inspect does.
func volumeOf(v volumes.Volume) volume.Volume { return v.API() }

// keyValues parses KEY=VALUE flags.
func keyValues(list []string, what string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, usageError{fmt.Errorf("invalid %s %q: use KEY=VALUE", what, kv)}
		}
		m[k] = v
	}
	return m, nil
}

func (a *app) volumeCreateCmd() *cobra.Command {
	var driver string
	var labels, opts []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			l, err := keyValues(labels, "label")
			if err != nil {
				return err
			}
			o, err := keyValues(opts, "option")
			if err != nil {
				return err
			}
			name := ""
			if len(argv) == 1 {
				name = argv[0]
			}
			return a.withVolumes(cmd, func(ctx context.Context, s *volumes.Store) error {
				v, err := s.Create(ctx, name, volumes.CreateOptions{Driver: driver, Labels: l, Options: o})
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, v.Name)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&driver, "driver", "d", volumes.DriverLocal, "volume driver name")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "set metadata for a volume")
	cmd.Flags().StringArrayVarP(&opts, "opt", "o", nil, "set driver specific options")
	return cmd
}

func (a *app) volumeLsCmd() *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageError{fmt.Errorf("invalid format %q: use table or json", format)}
			}
			return a.withVolumes(cmd, func(ctx context.Context, s *volumes.Store) error {
				list := s.List()
				if format == "json" {
					out := make([]volume.Volume, 0, len(list))
					for _, v := range list {
						out = append(out, volumeOf(v))
					}
					return writeJSON(a.stdout, out)
				}
				if quiet {
					for _, v := range list {
						fmt.Fprintln(a.stdout, v.Name)
					}
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
				for _, v := range list {
					fmt.Fprintf(tw, "%s\t%s\n", v.Driver, v.Name)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only display volume names")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func (a *app) volumeInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, names []string) error {
			return a.withVolumes(cmd, func(ctx context.Context, s *volumes.Store) error {
				out := []volume.Volume{}
				var first error
				for _, n := range names {
					v, err := s.Get(n)
					if err != nil {
						if first == nil {
							first = err
						}
						continue
					}
					out = append(out, volumeOf(v))
				}
				if err := writeJSON(a.stdout, out); err != nil {
					return err
				}
				return first
			})
		},
	}
}

func (a *app) volumeRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, names []string) error {
			return a.withVolumes(cmd, func(ctx context.Context, s *volumes.Store) error {
				var last error
				for _, n := range names {
					if err := s.Remove(ctx, n); err != nil {
						if len(names) > 1 {
							fmt.Fprintf(a.stderr, "Error: %s\n", err)
						}
						last = err
						continue
					}
					fmt.Fprintln(a.stdout, n)
				}
				return last
			})
		},
	}
}

func (a *app) volumePruneCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused anonymous volumes (with --all, unused named ones too)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withVolumes(cmd, func(ctx context.Context, s *volumes.Store) error {
				names, err := s.Prune(ctx, all)
				fmt.Fprintln(a.stdout, "Deleted Volumes:")
				for _, n := range names {
					fmt.Fprintln(a.stdout, n)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all unused volumes, not just anonymous ones")
	return cmd
}
