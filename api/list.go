package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/docker/go-connections/nat"
	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
)

// psFilters are the container list filters moby accepts (daemon/list.go); any other key is
// refused with "invalid filter 'KEY'".
var psFilters = []string{"ancestor", "before", "exited", "id", "isolation", "label", "name", "status", "health",
	"since", "volume", "network", "is-task", "publish", "expose"}

// listFilter is a checked container list query, as moby's foldFilter makes it.
type listFilter struct {
	all       bool
	limit     int
	exited    bool // an exited filter: it matches no container that never ran
	taskSet   bool
	isTask    bool
	before    string // container IDs
	since     string
	ancestors map[string]bool
	ports     bool // a publish or expose filter: a created container publishes no port
}

func (s *Server) getContainersJSON(w http.ResponseWriter, r *http.Request, _ *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	f, err := parseFilters(r.Form.Get("filters"))
	if err != nil {
		return err
	}
	if err := f.validate(psFilters...); err != nil {
		return err
	}
	ctx := r.Context()
	list, err := s.eng.List(ctx, core.ListOptions{All: true})
	if err != nil {
		return err
	}
	lf, err := s.foldFilter(r, f, list)
	if err != nil {
		return err
	}
	out := make([]container.Summary, 0, len(list))
	before := lf.before
	// moby's includeContainerInList, in its order; the list is newest first.
	for _, c := range list {
		if before != "" {
			if c.ID == before {
				before = ""
			}
			continue
		}
		if lf.since != "" && c.ID == lf.since {
			break
		}
		// Slipway never starts a container: like dockerd, ps without all shows none of them.
		if !lf.all && lf.limit <= 0 {
			continue
		}
		name := primaryName(c.Names)
		if !f.match("name", name) && !f.match("name", strings.TrimPrefix(name, "/")) {
			continue
		}
		if !f.match("id", c.ID) {
			continue
		}
		if lf.taskSet && lf.isTask {
			continue // no container of Slipway's is a swarm task
		}
		if !f.matchLabels("label", c.Labels) {
			continue
		}
		// isolation is a Windows concept: moby ignores it on Linux.
		if lf.limit > 0 && len(out) == lf.limit {
			break
		}
		// A created container never ran (no exit code) and has no health status yet.
		if lf.exited || !f.match("status", string(c.State)) || !f.exact("health", string(container.NoHealthcheck)) {
			continue
		}
		if f.has("volume") && !s.hasVolume(ctx, c.ID, f.values("volume")) {
			continue
		}
		if lf.ancestors != nil && !lf.ancestors[c.ImageID] {
			continue
		}
		if f.has("network") && !onNetwork(c, f.values("network")) {
			continue
		}
		if lf.ports {
			continue
		}
		out = append(out, c)
	}
	if boolValue(r, "size") {
		for i := range out {
			rw, rootfs, err := s.containerSize(ctx, out[i].ID)
			if err != nil {
				return err
			}
			out[i].SizeRw, out[i].SizeRootFs = rw, rootfs
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// foldFilter checks the filter values and resolves the references in them, with moby's
// error texts.
func (s *Server) foldFilter(r *http.Request, f filters, list []container.Summary) (*listFilter, error) {
	lf := &listFilter{all: boolValue(r, "all")}
	if v := r.Form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid limit %q: %w", v, err))
		}
		lf.limit = n
	}
	for _, v := range f.values("exited") {
		if _, err := strconv.Atoi(v); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter 'exited=%s': %w", v, err))
		}
		lf.exited = true
	}
	for _, st := range f.values("status") {
		if err := container.ValidateContainerState(container.ContainerState(st)); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter 'status=%s': %w", st, err))
		}
		lf.all = true
	}
	if vals, ok := f["is-task"]; ok {
		isFalse, isTrue := vals["0"] || vals["false"], vals["1"] || vals["true"]
		if isFalse == isTrue {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter 'is-task=%s'", f.values("is-task")))
		}
		lf.taskSet, lf.isTask = true, isTrue
	}
	for _, h := range f.values("health") {
		if err := container.ValidateHealthStatus(container.HealthStatus(h)); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter 'health=%s': %w", h, err))
		}
	}
	for _, v := range f.values("before") {
		id, err := idOrName(list, v)
		if err != nil {
			return nil, err
		}
		lf.before = id
	}
	for _, v := range f.values("since") {
		id, err := idOrName(list, v)
		if err != nil {
			return nil, err
		}
		lf.since = id
	}
	if f.has("ancestor") {
		lf.ancestors = map[string]bool{}
		st, _ := s.imageStore()
		for _, a := range f.values("ancestor") {
			if st == nil {
				continue
			}
			// As moby: an ancestor that names no image matches nothing; it is logged.
			if img, err := st.Resolve(r.Context(), a, nil); err == nil {
				lf.ancestors[img.ID] = true
			} else {
				s.log.Warn("Error while looking up for image", "image", a, "error", err)
			}
		}
	}
	for _, key := range []string{"publish", "expose"} {
		for _, v := range f.values(key) {
			if err := checkPortFilter(key, v); err != nil {
				return nil, err
			}
			lf.ports = true
		}
	}
	return lf, nil
}

// idOrName is moby's idOrNameFilter for before and since: a full container ID, else a
// name; NotFound "No such container: REF" otherwise.
func idOrName(list []container.Summary, v string) (string, error) {
	for _, c := range list {
		if c.ID == v {
			return c.ID, nil
		}
	}
	want := strings.TrimPrefix(v, "/")
	for _, c := range list {
		for _, n := range c.Names {
			if strings.TrimPrefix(n, "/") == want {
				return c.ID, nil
			}
		}
	}
	return "", errdefs.NotFound(fmt.Errorf("No such container: %s", v))
}

// checkPortFilter checks a publish or expose value as moby's portOp parses it:
// PORT[-PORT][/PROTO], without a host part. moby answers these errors with 500; they are
// the client's, so Slipway classes them InvalidArgument (400).
func checkPortFilter(key, v string) error {
	if strings.Contains(v, ":") {
		return errdefs.InvalidArgument(fmt.Errorf("filter for '%s' should not contain ':': %s", key, v))
	}
	proto, port := nat.SplitProtoPort(v)
	start, end, err := nat.ParsePortRange(port)
	if err == nil {
		for p := start; p <= end && err == nil; p++ {
			_, err = nat.NewPort(proto, strconv.FormatUint(p, 10))
		}
	}
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("error while looking up for %s %s: %s", key, v, err))
	}
	return nil
}

// onNetwork is moby's network filter: a network's name, or a prefix of its ID.
func onNetwork(c container.Summary, vals []string) bool {
	if c.NetworkSettings == nil {
		return false
	}
	for _, v := range vals {
		if _, ok := c.NetworkSettings.Networks[v]; ok {
			return true
		}
		for _, nw := range c.NetworkSettings.Networks {
			if nw != nil && strings.HasPrefix(nw.NetworkID, v) {
				return true
			}
		}
	}
	return false
}

// hasVolume is moby's volume filter: a mount's destination, or its volume name (the source
// of a bind).
func (s *Server) hasVolume(ctx context.Context, id string, vals []string) bool {
	rec, err := s.eng.Record(ctx, id)
	if err != nil || rec.Dirs == nil {
		return false
	}
	for _, m := range rec.Dirs.Mounts {
		key := m.Name
		if key == "" {
			key = m.Source
		}
		for _, v := range vals {
			if (m.Destination != "" && v == m.Destination) || v == key {
				return true
			}
		}
	}
	return false
}

func (s *Server) getContainerJSON(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	resp, err := s.eng.Inspect(r.Context(), rt.name)
	if err != nil {
		return err
	}
	if boolValue(r, "size") {
		rw, rootfs, err := s.containerSize(r.Context(), resp.ID)
		if err != nil {
			return err
		}
		resp.SizeRw, resp.SizeRootFs = &rw, &rootfs
	}
	return writeJSON(w, http.StatusOK, inspectForVersion(resp, rt.version))
}

// primaryName is the container's own name among its Names, which also hold the paths of the
// links to it ("/web/db"): moby's name filter matches the name only.
func primaryName(names []string) string {
	for _, n := range names {
		if !strings.Contains(strings.TrimPrefix(n, "/"), "/") {
			return n
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return ""
}
