package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
)

func (a *app) imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%q needs a subcommand: load, ls, inspect, tag or rm", cmd.CommandPath())}
		}}
	cmd.AddCommand(a.imageLoadCmd(), a.imageLsCmd(), a.imageInspectCmd(), a.imageTagCmd(), a.imageRmCmd())
	return cmd
}

// store returns the engine's image store.
func store(e *core.Engine) (*images.Store, error) {
	s, ok := e.Images().(*images.Store)
	if !ok {
		return nil, errdefs.FailedPrecondition(fmt.Errorf("the engine has no local image store"))
	}
	return s, nil
}

func (a *app) imageLoadCmd() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive (docker save or OCI layout, plain or gzip) or STDIN",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.Reader = a.stdin
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return errdefs.InvalidArgument(fmt.Errorf("open input: %w", err))
				}
				defer f.Close()
				r = f
			}
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				s, err := store(e)
				if err != nil {
					return err
				}
				res, err := s.Load(ctx, r, images.LoadOptions{})
				if err != nil {
					return err
				}
				emit(a, e, s.LoadEvents(ctx, res))
				// As docker load -q: quiet hides progress only, which this command has none of.
				for _, l := range res.Lines {
					fmt.Fprintln(a.stdout, l)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from a tar archive file instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the load output")
	return cmd
}

func (a *app) imageLsCmd() *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageError{fmt.Errorf("invalid format %q: use table or json", format)}
			}
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				s, err := store(e)
				if err != nil {
					return err
				}
				list, err := s.List(ctx)
				if err != nil {
					return err
				}
				if format == "json" {
					return writeJSON(a.stdout, list)
				}
				if quiet {
					for _, im := range list {
						fmt.Fprintln(a.stdout, shortID(im.ID))
					}
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
				for _, im := range list {
					created := units.HumanDuration(time.Since(time.Unix(im.Created, 0))) + " ago"
					tags := im.RepoTags
					if len(tags) == 0 {
						tags = []string{"<none>:<none>"}
					}
					for _, t := range tags {
						i := strings.LastIndex(t, ":")
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t[:i], t[i+1:], shortID(im.ID), created, units.HumanSizeWithPrecision(float64(im.Size), 3))
					}
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (a *app) imageInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				s, err := store(e)
				if err != nil {
					return err
				}
				out := []image.InspectResponse{}
				var first error
				for _, ref := range refs {
					r, err := s.Inspect(ctx, ref)
					if err != nil {
						if first == nil {
							first = err
						}
						continue
					}
					out = append(out, r)
				}
				if err := writeJSON(a.stdout, out); err != nil {
					return err
				}
				return first
			})
		},
	}
}

func (a *app) imageTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE (moved from any image that has it)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				s, err := store(e)
				if err != nil {
					return err
				}
				id, name, err := s.Tag(ctx, refs[0], refs[1])
				if err != nil {
					return err
				}
				emit(a, e, []core.Event{s.TagEvent(ctx, id, name)})
				return nil
			})
		},
	}
}

func (a *app) imageRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rm IMAGE [IMAGE...]",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove one or more images",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, refs []string) error {
			return a.withEngine(cmd, func(ctx context.Context, e *core.Engine) error {
				s, err := store(e)
				if err != nil {
					return err
				}
				var last error
				for _, ref := range refs {
					// The ID and labels for the events, read before the image may go.
					id, labels := "", map[string]string(nil)
					if insp, err := s.Inspect(ctx, ref); err == nil {
						id = insp.ID
						if insp.Config != nil {
							labels = insp.Config.Labels
						}
					}
					resp, err := s.Delete(ctx, ref, e.ImageUser)
					if err == nil {
						emit(a, e, images.DeleteEvents(id, labels, resp))
						pruneLayers(ctx, a, e, resp)
					}
					if err != nil {
						if len(refs) > 1 {
							fmt.Fprintf(a.stderr, "Error: %s\n", err)
						}
						last = err
						continue
					}
					for _, r := range resp {
						if r.Untagged != "" {
							fmt.Fprintf(a.stdout, "Untagged: %s\n", r.Untagged)
						}
						if r.Deleted != "" {
							fmt.Fprintf(a.stdout, "Deleted: %s\n", r.Deleted)
						}
					}
				}
				return last
			})
		},
	}
	cmd.Flags().BoolP("force", "f", false, "accepted for compatibility; an image used by a container is never removed")
	return cmd
}

// emit logs image events in the engine's event log; a failure is a warning on stderr, the
// operation having happened.
func emit(a *app, e *core.Engine, evs []core.Event) {
	for _, ev := range evs {
		if err := e.Emit(ev); err != nil {
			fmt.Fprintf(a.stderr, "WARNING: image event %s of %s not logged: %s\n", ev.Action, ev.ID, err)
		}
	}
}

func sortStrings(s []string) { sort.Strings(s) }

// version is the module version the binary was built from, or "dev".
func version() string { return buildVersion() }

// pruneLayers removes the unpacked layers of an image resp deleted, unless another image
// shares them. A failure is reported and leaves them for the next deletion.
func pruneLayers(ctx context.Context, a *app, e *core.Engine, resp []image.DeleteResponse) {
	for _, r := range resp {
		if r.Deleted == "" {
			continue
		}
		if _, err := e.PruneLayers(ctx); err != nil {
			fmt.Fprintf(a.stderr, "Warning: removing the unpacked layers of the deleted image failed: %s\n", err)
		}
		return
	}
}
