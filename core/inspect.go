package core

import (
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"

	"github.com/slipwayhq/slipway/core/spec"
)

// inspectOf renders a record in the shape of docker inspect.
func inspectOf(rec *spec.Record) container.InspectResponse {
	out := container.InspectResponse{
		ID:      rec.ID,
		Created: rec.Created.Format(time.RFC3339Nano),
		Name:    "/" + rec.Name,
		State: &container.State{
			Status:     container.StateCreated,
			StartedAt:  "0001-01-01T00:00:00Z",
			FinishedAt: "0001-01-01T00:00:00Z",
		},
		ExecIDs: nil,
		Mounts:  []container.MountPoint{},
	}
	if rec.State == "dead" {
		out.State.Status = container.StateDead
		out.State.Dead = true
		out.State.Error = rec.Dirty
	}
	if m := rec.Merged; m != nil {
		out.Path, out.Args = m.Path, m.Args
		out.Config, out.HostConfig = m.Config, m.HostConfig
	}
	if out.Args == nil {
		out.Args = []string{}
	}
	if img := rec.Image; img != nil {
		out.Image = img.ID
		out.Platform = img.Platform.OS
		if out.Platform == "" {
			out.Platform = "linux"
		}
		if img.Manifest.Digest != "" {
			d := img.Manifest
			out.ImageManifestDescriptor = &d
		}
	}
	if s := rec.Security; s != nil {
		out.MountLabel, out.ProcessLabel, out.AppArmorProfile = s.MountLabel, s.ProcessLabel, s.AppArmorProfile
		if out.HostConfig != nil {
			// The security stage's defaults are part of the HostConfig moby shows; the copy
			// keeps the record's HostConfig unchanged.
			hc := *out.HostConfig
			hc.SecurityOpt, hc.MaskedPaths, hc.ReadonlyPaths = s.SecurityOpt, s.MaskedPaths, s.ReadonlyPaths
			out.HostConfig = &hc
		}
	}
	if fs := rec.RootFS; fs != nil {
		out.Driver = fs.Driver
		out.GraphDriver = &storage.DriverData{Name: fs.Driver, Data: fs.Data}
	}
	if d := rec.Dirs; d != nil && len(d.Mounts) > 0 {
		out.Mounts = append([]container.MountPoint(nil), d.Mounts...)
	}
	// ResolvConfPath, HostnamePath, HostsPath and LogPath stay "": moby sets them when it
	// sets up the network and the logger, at start.
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}, Ports: network.PortMap{}}
	if n := rec.Network; n != nil {
		for k, v := range n.Networks {
			ns.Networks[k] = v
		}
		if n.Ports != nil {
			ns.Ports = n.Ports
		}
	}
	out.NetworkSettings = ns
	return out
}

// summaryOf renders a record in the shape of docker ps.
func summaryOf(rec *spec.Record) container.Summary {
	s := container.Summary{
		ID:      rec.ID,
		Names:   []string{"/" + rec.Name},
		Created: rec.Created.Unix(),
		State:   container.StateCreated,
		Status:  "Created",
		Labels:  map[string]string{},
		Ports:   []container.PortSummary{},
		Mounts:  []container.MountPoint{},
	}
	if rec.State == "dead" {
		s.State, s.Status = container.StateDead, "Dead"
	}
	if img := rec.Image; img != nil {
		s.Image, s.ImageID = img.Ref, img.ID
	}
	if m := rec.Merged; m != nil {
		s.Command = strings.Join(append([]string{m.Path}, m.Args...), " ")
		if m.Config != nil && m.Config.Labels != nil {
			s.Labels = m.Config.Labels
		}
		if m.HostConfig != nil {
			s.HostConfig.NetworkMode = string(m.HostConfig.NetworkMode)
			s.HostConfig.Annotations = m.HostConfig.Annotations
		}
	}
	if d := rec.Dirs; d != nil && len(d.Mounts) > 0 {
		s.Mounts = append([]container.MountPoint(nil), d.Mounts...)
	}
	if n := rec.Network; n != nil {
		s.NetworkSettings = &container.NetworkSettingsSummary{Networks: n.Networks}
	}
	return s
}

// withLinks sets out.HostConfig.Links as moby's inspect does: rebuilt from the link graph,
// never the request's "name:alias" strings, and null when the container links to nothing.
// A link shows while its target exists. moby lets the target be removed; its running
// daemon keeps showing the stale link until it restarts and rebuilds the graph from the
// containers on disk, which drops it. Slipway shows at once what moby shows after that
// restart. exists reports whether a registered container has the name. out.HostConfig is
// copied, never changed in place: it is the record's.
func withLinks(out *container.InspectResponse, rec *spec.Record, exists func(name string) bool) {
	if out.HostConfig == nil {
		return
	}
	hc := *out.HostConfig
	hc.Links = nil
	if rec.Network != nil {
		for _, l := range rec.Network.Links {
			target, _, ok := strings.Cut(strings.TrimPrefix(l, "/"), ":")
			if ok && exists(target) {
				hc.Links = append(hc.Links, l)
			}
		}
	}
	out.HostConfig = &hc
}
