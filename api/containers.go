package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

func (s *Server) postContainersCreate(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if err := checkJSON(r); err != nil {
		return err
	}
	body, err := decodeCreate(r.Body)
	if err != nil {
		return err
	}
	req := spec.CreateRequest{
		Name:             r.Form.Get("name"),
		Config:           body.Config,
		HostConfig:       body.HostConfig,
		NetworkingConfig: body.NetworkingConfig,
	}
	if err := adaptToVersion(&req, rt.version); err != nil {
		return err
	}
	if !versionLess(rt.version, "1.41") {
		if v := r.Form.Get("platform"); v != "" {
			p, err := platforms.Parse(v)
			if err != nil {
				return errdefs.InvalidArgument(err)
			}
			req.Platform = &p
		}
	}
	resp, err := s.eng.Create(r.Context(), req)
	if err != nil {
		return err
	}
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	return writeJSON(w, http.StatusCreated, resp)
}

// adaptToVersion applies what moby's create handler does for requests of older API versions.
func adaptToVersion(req *spec.CreateRequest, v string) error {
	hc, nc := req.HostConfig, req.NetworkingConfig
	if hc == nil {
		if nc != nil && versionLess(v, "1.44") && len(nc.EndpointsConfig) > 1 {
			return multipleEndpoints(nc.EndpointsConfig)
		}
		return nil
	}
	if versionLess(v, "1.25") {
		hc.AutoRemove = false
	}
	if versionLess(v, "1.40") {
		for _, m := range hc.Mounts {
			if m.BindOptions != nil {
				m.BindOptions.NonRecursive = false
			}
		}
		if hc.IpcMode.IsEmpty() {
			hc.IpcMode = container.IPCModeShareable
		}
	}
	if versionLess(v, "1.42") {
		for i := range hc.Mounts {
			m := &hc.Mounts[i]
			if m.BindOptions != nil {
				m.BindOptions.CreateMountpoint = false
			}
			if m.VolumeOptions != nil && m.Type != mount.TypeVolume {
				m.VolumeOptions = nil
			}
			if m.TmpfsOptions != nil && m.Type != mount.TypeTmpfs {
				m.TmpfsOptions = nil
			}
		}
		hc.ConsoleSize = [2]uint{0, 0}
	}
	if versionLess(v, "1.43") {
		hc.Annotations = nil
	}
	if versionLess(v, "1.44") {
		if c := req.Config; c != nil && c.Healthcheck != nil {
			c.Healthcheck.StartInterval = 0
		}
		for _, m := range hc.Mounts {
			if m.Type == mount.TypeBind && m.BindOptions != nil && m.BindOptions.ReadOnlyForceRecursive {
				return errdefs.InvalidArgument(errors.New("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"))
			}
		}
		if nc != nil && len(nc.EndpointsConfig) > 1 {
			return multipleEndpoints(nc.EndpointsConfig)
		}
	}
	return nil
}

func multipleEndpoints[V any](eps map[string]V) error {
	l := make([]string, 0, len(eps))
	for k := range eps {
		l = append(l, k)
	}
	sort.Strings(l)
	return errdefs.InvalidArgument(fmt.Errorf("Container cannot be created with multiple network endpoints: %s", strings.Join(l, ", ")))
}

// validStates are the container states a status filter may name (moby's list).
var validStates = []container.ContainerState{container.StateCreated, container.StateRunning, container.StatePaused,
	container.StateRestarting, container.StateRemoving, container.StateExited, container.StateDead}

func (s *Server) getContainersJSON(w http.ResponseWriter, r *http.Request, _ *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	f, err := parseFilters(r.Form.Get("filters"))
	if err != nil {
		return err
	}
	if err := f.validate("name", "id", "label", "status", "ancestor", "before", "since", "exited", "health",
		"isolation", "network", "volume", "publish", "expose", "is-task", "label!", "annotation"); err != nil {
		return err
	}
	all := boolValue(r, "all")
	for _, st := range f.values("status") {
		ok := false
		for _, v := range validStates {
			ok = ok || string(v) == st
		}
		if !ok {
			return errdefs.InvalidArgument(fmt.Errorf("invalid filter 'status=%s': invalid value for state (%s): must be one of created, running, paused, restarting, removing, exited, dead", st, st))
		}
		all = true
	}
	limit := 0
	if v := r.Form.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid limit %q: %w", v, err))
		}
	}
	ctx := r.Context()
	list, err := s.eng.List(ctx, core.ListOptions{All: true})
	if err != nil {
		return err
	}
	var ancestors map[string]bool
	if f.has("ancestor") {
		ancestors = map[string]bool{}
		st, _ := s.imageStore()
		for _, a := range f.values("ancestor") {
			ancestors[a] = true
			if st == nil {
				continue
			}
			if img, err := st.Resolve(ctx, a, nil); err == nil {
				ancestors[img.ID] = true
			}
		}
	}
	out := make([]container.Summary, 0, len(list))
	for _, c := range list {
		// Slipway never starts a container: like dockerd, ps without all shows none of them.
		if !all && limit <= 0 {
			break
		}
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		if !f.match("name", name) && !f.match("name", strings.TrimPrefix(name, "/")) {
			continue
		}
		if !f.match("id", c.ID) || !f.matchLabels("label", c.Labels) || !f.match("status", string(c.State)) {
			continue
		}
		if ancestors != nil && !ancestors[c.Image] && !ancestors[c.ImageID] {
			continue
		}
		if f.has("exited") || f.has("health") || f.has("publish") || f.has("expose") || f.has("volume") {
			continue // nothing Slipway creates has exited, has a health status or a mount by name
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, c)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getContainerJSON(w http.ResponseWriter, r *http.Request, rt *route) error {
	resp, err := s.eng.Inspect(r.Context(), rt.name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if boolValue(r, "link") {
		return errdefs.InvalidArgument(fmt.Errorf("Conflict, cannot remove the default link name of the container"))
	}
	opts := core.RemoveOptions{Force: boolValue(r, "force"), RemoveVolumes: boolValue(r, "v")}
	if err := s.eng.Remove(r.Context(), rt.name, opts); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
