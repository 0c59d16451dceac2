package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
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
	DefaultNetwork(&req)
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
