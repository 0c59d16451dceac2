package moby

import (
	"maps"
	"slices"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// The deep copies below are field by field (about a microsecond for a typical request,
// against tens for a JSON round trip). TestDeepCopyNoAliasing fills every field of the API
// types by reflection and fails when a new pointer, slice or map field is not copied here.

func ptr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func clonePtrs[T any](s []*T) []*T {
	if s == nil {
		return nil
	}
	out := make([]*T, len(s))
	for i, p := range s {
		out[i] = ptr(p)
	}
	return out
}

// CopyConfig returns a deep copy of c.
func CopyConfig(c *container.Config) *container.Config {
	if c == nil {
		return nil
	}
	out := *c
	out.ExposedPorts = maps.Clone(c.ExposedPorts)
	out.Env = slices.Clone(c.Env)
	out.Cmd = slices.Clone(c.Cmd)
	if c.Healthcheck != nil {
		hc := *c.Healthcheck
		hc.Test = slices.Clone(c.Healthcheck.Test)
		out.Healthcheck = &hc
	}
	out.Volumes = maps.Clone(c.Volumes)
	out.Entrypoint = slices.Clone(c.Entrypoint)
	out.OnBuild = slices.Clone(c.OnBuild)
	out.Labels = maps.Clone(c.Labels)
	out.StopTimeout = ptr(c.StopTimeout)
	out.Shell = slices.Clone(c.Shell)
	return &out
}

// CopyHostConfig returns a deep copy of h.
func CopyHostConfig(h *container.HostConfig) *container.HostConfig {
	if h == nil {
		return nil
	}
	out := *h
	out.Binds = slices.Clone(h.Binds)
	out.LogConfig.Config = maps.Clone(h.LogConfig.Config)
	if h.PortBindings != nil {
		out.PortBindings = make(network.PortMap, len(h.PortBindings))
		for k, v := range h.PortBindings {
			out.PortBindings[k] = slices.Clone(v)
		}
	}
	out.VolumesFrom = slices.Clone(h.VolumesFrom)
	out.Annotations = maps.Clone(h.Annotations)
	out.CapAdd = slices.Clone(h.CapAdd)
	out.CapDrop = slices.Clone(h.CapDrop)
	out.DNS = slices.Clone(h.DNS)
	out.DNSOptions = slices.Clone(h.DNSOptions)
	out.DNSSearch = slices.Clone(h.DNSSearch)
	out.ExtraHosts = slices.Clone(h.ExtraHosts)
	out.GroupAdd = slices.Clone(h.GroupAdd)
	out.Links = slices.Clone(h.Links)
	out.SecurityOpt = slices.Clone(h.SecurityOpt)
	out.StorageOpt = maps.Clone(h.StorageOpt)
	out.Tmpfs = maps.Clone(h.Tmpfs)
	out.Sysctls = maps.Clone(h.Sysctls)
	out.Umask = ptr(h.Umask)
	out.Resources = copyResources(h.Resources)
	if h.Mounts != nil {
		out.Mounts = make([]mount.Mount, len(h.Mounts))
		for i, m := range h.Mounts {
			out.Mounts[i] = copyMount(m)
		}
	}
	out.MaskedPaths = slices.Clone(h.MaskedPaths)
	out.ReadonlyPaths = slices.Clone(h.ReadonlyPaths)
	out.Init = ptr(h.Init)
	return &out
}

func copyResources(r container.Resources) container.Resources {
	out := r
	out.BlkioWeightDevice = clonePtrs[blkiodev.WeightDevice](r.BlkioWeightDevice)
	out.BlkioDeviceReadBps = clonePtrs[blkiodev.ThrottleDevice](r.BlkioDeviceReadBps)
	out.BlkioDeviceWriteBps = clonePtrs[blkiodev.ThrottleDevice](r.BlkioDeviceWriteBps)
	out.BlkioDeviceReadIOps = clonePtrs[blkiodev.ThrottleDevice](r.BlkioDeviceReadIOps)
	out.BlkioDeviceWriteIOps = clonePtrs[blkiodev.ThrottleDevice](r.BlkioDeviceWriteIOps)
	out.Devices = slices.Clone(r.Devices)
	out.DeviceCgroupRules = slices.Clone(r.DeviceCgroupRules)
	if r.DeviceRequests != nil {
		out.DeviceRequests = make([]container.DeviceRequest, len(r.DeviceRequests))
		for i, d := range r.DeviceRequests {
			d.DeviceIDs = slices.Clone(d.DeviceIDs)
			if d.Capabilities != nil {
				caps := make([][]string, len(d.Capabilities))
				for j, c := range d.Capabilities {
					caps[j] = slices.Clone(c)
				}
				d.Capabilities = caps
			}
			d.Options = maps.Clone(d.Options)
			out.DeviceRequests[i] = d
		}
	}
	out.MemorySwappiness = ptr(r.MemorySwappiness)
	out.OomKillDisable = ptr(r.OomKillDisable)
	out.PidsLimit = ptr(r.PidsLimit)
	out.Ulimits = clonePtrs[container.Ulimit](r.Ulimits)
	return out
}

func copyMount(m mount.Mount) mount.Mount {
	out := m
	out.BindOptions = ptr(m.BindOptions)
	if m.VolumeOptions != nil {
		vo := *m.VolumeOptions
		vo.Labels = maps.Clone(vo.Labels)
		if vo.DriverConfig != nil {
			d := *vo.DriverConfig
			d.Options = maps.Clone(d.Options)
			vo.DriverConfig = &d
		}
		out.VolumeOptions = &vo
	}
	out.ImageOptions = ptr(m.ImageOptions)
	if m.TmpfsOptions != nil {
		to := *m.TmpfsOptions
		if to.Options != nil {
			opts := make([][]string, len(to.Options))
			for i, o := range to.Options {
				opts[i] = slices.Clone(o)
			}
			to.Options = opts
		}
		out.TmpfsOptions = &to
	}
	out.ClusterOptions = ptr(m.ClusterOptions)
	return out
}

// CopyNetworkingConfig returns a deep copy of n; a nil endpoint stays nil (verify refuses it).
func CopyNetworkingConfig(n *network.NetworkingConfig) *network.NetworkingConfig {
	if n == nil {
		return nil
	}
	out := *n
	if n.EndpointsConfig != nil {
		out.EndpointsConfig = make(map[string]*network.EndpointSettings, len(n.EndpointsConfig))
		for k, v := range n.EndpointsConfig {
			out.EndpointsConfig[k] = v.Copy()
		}
	}
	return &out
}
