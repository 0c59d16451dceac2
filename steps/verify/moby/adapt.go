package moby

import (
	"context"

	"github.com/moby/moby/api/types/container"
)

// adapt fills in the defaults after validation, as moby's adaptContainerSettings does, so
// the defaults themselves are never validated. The SELinux options that moby also adds here
// (generateSecurityOpt) are the security stage's job.
func (v *Verifier) adapt(ctx context.Context, hc *container.HostConfig, si *SysInfo) {
	if hc.Memory > 0 && hc.MemorySwap == 0 {
		hc.MemorySwap = hc.Memory * 2
	}
	if hc.ShmSize == 0 {
		hc.ShmSize = v.shmSize
	}
	if hc.IpcMode.IsEmpty() {
		hc.IpcMode = v.ipcMode
	}
	if hc.CgroupnsMode.IsEmpty() {
		switch {
		case hc.Privileged && !si.CgroupUnified:
			hc.CgroupnsMode = container.CgroupnsModeHost
		case v.cgroupnsMode != "":
			hc.CgroupnsMode = v.cgroupnsMode
		case si.CgroupUnified:
			hc.CgroupnsMode = container.CgroupnsModePrivate
		default:
			hc.CgroupnsMode = container.CgroupnsModeHost
		}
	}
	v.adaptSharedNamespaces(ctx, hc)
	if hc.OomKillDisable == nil {
		f := false
		hc.OomKillDisable = &f
	}
}

// adaptSharedNamespaces rewrites container:NAME in PidMode, IpcMode and NetworkMode to
// container:ID, so that a later rename keeps the link; a failed lookup leaves the value
// alone (the security and network stages report a missing container).
func (v *Verifier) adaptSharedNamespaces(ctx context.Context, hc *container.HostConfig) {
	if v.host == nil {
		return
	}
	lookup := func(ref string) (string, bool) {
		if ref == "" {
			return "", false
		}
		rec, err := v.host.Container(ctx, ref)
		if err != nil || rec == nil || rec.ID == "" {
			return "", false
		}
		return "container:" + rec.ID, true
	}
	if hc.PidMode.IsContainer() {
		if m, ok := lookup(hc.PidMode.Container()); ok {
			hc.PidMode = container.PidMode(m)
		}
	}
	if hc.IpcMode.IsContainer() {
		if m, ok := lookup(hc.IpcMode.Container()); ok {
			hc.IpcMode = container.IpcMode(m)
		}
	}
	if hc.NetworkMode.IsContainer() {
		if m, ok := lookup(hc.NetworkMode.ConnectedContainer()); ok {
			hc.NetworkMode = container.NetworkMode(m)
		}
	}
}
