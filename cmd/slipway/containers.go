package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/api"
	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/internal/createflags"
)

func (a *app) createCmd() *cobra.Command {
	var opts *createflags.Options
	var trace bool
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			req, err := opts.Request(cmd.Flags(), argv[0], argv[1:])
			if err != nil {
				return usageError{err}
			}
			api.DefaultNetwork(req)
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				var t core.Trace
				if trace {
					ctx = core.WithTrace(ctx, &t)
				}
				start := time.Now()
				resp, err := e.Create(ctx, *req)
				for _, w := range resp.Warnings {
					fmt.Fprintf(a.stderr, "WARNING: %s\n", w)
				}
				if trace {
					printTrace(a.stderr, &t, time.Since(start))
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, resp.ID)
				return nil
			})
		},
	}
	cmd.Flags().SetInterspersed(false)
	opts = createflags.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&trace, "trace", false, "print how long each stage took")
	return cmd
}

func printTrace(w io.Writer, t *core.Trace, total time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tIMPLEMENTATION\tDURATION\tRESULT")
	for _, s := range t.Steps {
		res := "ok"
		if s.Err != nil {
			res = s.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Stage, s.Impl, s.Duration.Round(time.Microsecond), res)
	}
	fmt.Fprintf(tw, "total\t\t%s\t\n", total.Round(time.Microsecond))
	tw.Flush()
}

func (a *app) lsCmd() *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"ps", "list"},
		Short:   "List containers",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageError{fmt.Errorf("invalid format %q: use table or json", format)}
			}
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				list, err := e.List(ctx, core.ListOptions{All: all})
				if err != nil {
					return err
				}
				switch {
				case quiet:
					for _, c := range list {
						fmt.Fprintln(a.stdout, c.ID[:12])
					}
				case format == "json":
					return writeJSON(a.stdout, list)
				default:
					tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
					fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
					for _, c := range list {
						cmdline := c.Command
						if len(cmdline) > 20 {
							cmdline = cmdline[:19] + "…"
						}
						fmt.Fprintf(tw, "%s\t%s\t%q\t%s ago\t%s\t\t%s\n", c.ID[:12], c.Image, cmdline,
							units.HumanDuration(time.Since(time.Unix(c.Created, 0))), c.Status, ownName(c.Names))
					}
					return tw.Flush()
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers, also dead ones (failed removals and undos)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only display container IDs")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

func (a *app) inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				// As docker inspect shows it through slipway serve (API 1.50).
				out := []any{}
				var errs []string
				for _, ref := range refs {
					r, err := e.Inspect(ctx, ref)
					if err != nil {
						errs = append(errs, err.Error())
						continue
					}
					out = append(out, api.InspectAsServed(r))
				}
				if err := writeJSON(a.stdout, out); err != nil {
					return err
				}
				if len(errs) > 0 {
					return firstClassed(ctx, e, refs, errs)
				}
				return nil
			})
		},
	}
}

// firstClassed returns the error of the first reference that failed, keeping its class.
func firstClassed(ctx context.Context, e *core.Engine, refs []string, msgs []string) error {
	for _, ref := range refs {
		if _, err := e.Inspect(ctx, ref); err != nil {
			if len(msgs) > 1 {
				return fmt.Errorf("%s", strings.Join(msgs, "\n"))
			}
			return err
		}
	}
	return nil
}

func (a *app) rmCmd() *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				var last error
				for _, ref := range refs {
					if err := e.Remove(ctx, ref, core.RemoveOptions{Force: force, RemoveVolumes: volumes}); err != nil {
						if len(refs) > 1 {
							fmt.Fprintf(a.stderr, "Error: %s\n", err)
						}
						last = err
						continue
					}
					fmt.Fprintln(a.stdout, ref)
				}
				if last != nil && len(refs) > 1 {
					return fmt.Errorf("failed to remove one or more containers")
				}
				return last
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "force the removal (a created container is never running; accepted for compatibility)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove anonymous volumes associated with the container")
	return cmd
}

func (a *app) mountCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mount CONTAINER",
		Short: "Mount a container's root filesystem and print where",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				p, err := e.Mount(ctx, refs[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, p)
				return nil
			})
		},
	}
}

func (a *app) umountCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "umount CONTAINER",
		Aliases: []string{"unmount"},
		Short:   "Unmount a container's root filesystem",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				return e.Unmount(ctx, refs[0])
			})
		},
	}
}

func (a *app) recoverCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "recover",
		Short: "Finish the undo of runs left half-done, and retry failed undos",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Open already recovers what a dead process left; Recover retries what failed since.
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				rep, err := e.Recover(ctx)
				recovered := append(e.OpenRecovery().Recovered, rep.Recovered...)
				for _, id := range recovered {
					fmt.Fprintf(a.stdout, "recovered %s\n", id)
				}
				if err != nil {
					return err
				}
				if len(recovered) == 0 {
					fmt.Fprintln(a.stdout, "nothing to recover")
				}
				return nil
			})
		},
	}
}

func (a *app) eventsCmd() *cobra.Command {
	var since, until, format string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Show the engine's event log (slipway serve streams it live)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := parseTime(since)
			if err != nil {
				return usageError{err}
			}
			u, err := parseTime(until)
			if err != nil {
				return usageError{err}
			}
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				evs, err := e.Events(ctx, s, u)
				if err != nil {
					return err
				}
				if format == "json" {
					for _, ev := range evs {
						b, _ := json.Marshal(ev)
						fmt.Fprintln(a.stdout, string(b))
					}
					return nil
				}
				for _, ev := range evs {
					var attrs []string
					for k, v := range ev.Attrs {
						attrs = append(attrs, k+"="+v)
					}
					sortStrings(attrs)
					fmt.Fprintf(a.stdout, "%s %s %s %s (%s)\n", ev.Time.Format("2006-01-02T15:04:05.000000000Z07:00"), ev.Type, ev.Action, ev.ID, strings.Join(attrs, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "show events created since this time (RFC 3339, Unix seconds, or a duration like 10m)")
	cmd.Flags().StringVar(&until, "until", "", "show events created until this time")
	cmd.Flags().StringVar(&format, "format", "", "output format: empty for text, or json")
	return cmd
}

// parseTime accepts RFC 3339, Unix seconds or a duration before now, as docker events does.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	var sec int64
	if _, err := fmt.Sscanf(s, "%d", &sec); err == nil && fmt.Sprint(sec) == s {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: use RFC 3339, Unix seconds or a duration", s)
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "slipway %s\n", version())
			return nil
		},
	}
}

// ownName is what docker ps shows in its NAMES column: the container's own name, without
// the paths of the links to it ("web/db") that its Names also hold.
func ownName(names []string) string {
	for _, n := range names {
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			return n
		}
	}
	return strings.TrimPrefix(strings.Join(names, ","), "/")
}
