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
	}
	if fs := rec.RootFS; fs != nil {
		out.Driver = fs.Driver
		out.GraphDriver = &storage.DriverData{Name: fs.Driver, Data: fs.Data}
	}
	if d := rec.Dirs; d != nil && d.Root != "" {
		out.ResolvConfPath = d.Root + "/resolv.conf"
		out.HostnamePath = d.Root + "/hostname"
		out.HostsPath = d.Root + "/hosts"
		out.LogPath = ""
	}
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
	if n := rec.Network; n != nil {
		s.NetworkSettings = &container.NetworkSettingsSummary{Networks: n.Networks}
	}
	return s
}
