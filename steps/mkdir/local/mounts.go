package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/volumes"
)

// mountPoint is a resolved mount point with what the stage still has to do for it.
type mountPoint struct {
	container.MountPoint
	// copyData: copy the image's content at Destination into the volume when it is empty.
	copyData bool
	// image: the volume stands for one of Config.Volumes, which must not cover a file.
	image bool
}

var propagations = map[mount.Propagation]bool{
	mount.PropagationPrivate: true, mount.PropagationRPrivate: true,
	mount.PropagationSlave: true, mount.PropagationRSlave: true,
	mount.PropagationShared: true, mount.PropagationRShared: true,
}

// modeOptions are the words a bind's or --volumes-from's mode may hold.
var modeOptions = map[string]bool{
	"rw": true, "ro": true, "z": true, "Z": true, "nocopy": true,
	"consistent": true, "cached": true, "delegated": true,
}

func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	seen := map[string]int{}
	for _, o := range strings.Split(mode, ",") {
		var class string
		switch {
		case o == "rw" || o == "ro":
			class = "rw"
		case o == "z" || o == "Z":
			class = "label"
		case propagations[mount.Propagation(o)]:
			class = "propagation"
		case o == "nocopy":
			class = "copy"
		case modeOptions[o]:
			class = "consistency"
		default:
			return false
		}
		if seen[class]++; seen[class] > 1 {
			return false
		}
	}
	return true
}

func hasOption(mode, opt string) bool {
	for _, o := range strings.Split(mode, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// bind is a -v/--volume string split as moby's Linux parser splits it. The verify stage
// checked the syntax with moby's messages; what is refused here is only what a replaced
// verify stage may have let through.
type bind struct {
	source, target, mode string
}

func parseBind(raw string) (bind, error) {
	bad := errdefs.InvalidArgument(fmt.Errorf("invalid volume specification: '%s'", raw))
	arr := strings.SplitN(raw, ":", 4)
	var b bind
	switch {
	case arr[0] == "":
		return b, bad
	case len(arr) == 1:
		b.target = arr[0]
	case len(arr) == 2 && !validMode(arr[1]):
		b.source, b.target = arr[0], arr[1]
	case len(arr) == 3:
		b.source, b.target, b.mode = arr[0], arr[1], arr[2]
	default:
		return b, bad
	}
	if !validMode(b.mode) {
		return b, errdefs.InvalidArgument(fmt.Errorf("invalid mode: %v", b.mode))
	}
	if !path.IsAbs(b.target) || path.Clean(b.target) == "/" {
		return b, bad
	}
	b.target = path.Clean(b.target)
	return b, nil
}

// parseVolumesFrom splits "ID[:MODE]" with the messages of moby's Linux parser.
func parseVolumesFrom(raw string) (id, mode string, err error) {
	if raw == "" {
		return "", "", errdefs.InvalidArgument(errors.New("volumes-from specification cannot be an empty string"))
	}
	id, mode, _ = strings.Cut(raw, ":")
	if mode == "" {
		return id, "rw", nil
	}
	bad := errdefs.InvalidArgument(fmt.Errorf("invalid mode: %v", mode))
	if !validMode(mode) {
		return "", "", bad
	}
	for _, o := range strings.Split(mode, ",") {
		if propagations[mount.Propagation(o)] || o == "nocopy" {
			return "", "", bad
		}
	}
	return id, mode, nil
}

func duplicate(dest string) error {
	return errdefs.InvalidArgument(errors.New("Duplicate mount point: " + dest))
}

// resolveMounts turns --volumes-from, the binds, the mounts and Config.Volumes into mount
// points with moby's precedence (registerMountPoints, then the anonymous volumes of
// createContainerOSSpecificSettings), creating the volumes that are missing. Every volume it
// uses is referenced for rec.ID before it returns, also when it fails: the undo releases them.
func (d *DirMaker) resolveMounts(ctx context.Context, rec *spec.Record) ([]*mountPoint, error) {
	cfg, hc := rec.Merged.Config, rec.Merged.HostConfig
	if cfg == nil {
		cfg = &container.Config{}
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if len(hc.VolumesFrom) == 0 && len(hc.Binds) == 0 && len(hc.Mounts) == 0 && len(cfg.Volumes) == 0 {
		return nil, nil
	}
	if d.vols == nil {
		return nil, errdefs.FailedPrecondition(errors.New("the mkdir stage has no volume store"))
	}
	points := map[string]*mountPoint{}
	binds := map[string]bool{}
	acquire := func(name string, o volumes.CreateOptions) (volumes.Volume, error) {
		o.CreatedBy = rec.ID
		v, _, err := d.vols.Acquire(ctx, name, rec.ID, o)
		return v, err
	}

	// 1. The mount points of other containers.
	for _, raw := range hc.VolumesFrom {
		id, mode, err := parseVolumesFrom(raw)
		if err != nil {
			return nil, err
		}
		if d.host == nil {
			return nil, errdefs.FailedPrecondition(errors.New("the mkdir stage cannot look up containers"))
		}
		from, err := d.host.Container(ctx, id)
		if err != nil {
			if errdefs.IsNotFound(err) {
				// moby's registerMountPoints: a missing container is a bad parameter (400).
				err = errdefs.InvalidArgument(err)
			}
			return nil, err
		}
		if from.Dirs == nil {
			continue
		}
		rw := !hasOption(mode, "ro")
		for _, m := range from.Dirs.Mounts {
			cp := &mountPoint{MountPoint: container.MountPoint{
				Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
				Driver: m.Driver, RW: m.RW && rw, Propagation: m.Propagation,
			}}
			if m.Type == mount.TypeVolume && m.Name != "" {
				v, err := d.vols.AcquireExisting(ctx, m.Name, rec.ID)
				if err != nil {
					return nil, err
				}
				cp.Source = v.Mountpoint
			}
			points[cp.Destination] = cp
		}
	}

	// 2. The binds (-v), then the mounts (--mount).
	for _, raw := range hc.Binds {
		b, err := parseBind(raw)
		if err != nil {
			return nil, err
		}
		if _, tmpfs := hc.Tmpfs[b.target]; binds[b.target] || tmpfs {
			return nil, duplicate(b.target)
		}
		mp := &mountPoint{MountPoint: container.MountPoint{Destination: b.target, Mode: b.mode, RW: !hasOption(b.mode, "ro")}}
		if path.IsAbs(b.source) {
			mp.Type, mp.Source = mount.TypeBind, path.Clean(b.source)
			mp.Propagation = mount.PropagationRPrivate
			for _, o := range strings.Split(b.mode, ",") {
				if propagations[mount.Propagation(o)] {
					mp.Propagation = mount.Propagation(o)
				}
			}
		} else {
			name, anon := b.source, b.source == ""
			if anon {
				name = volumes.NewAnonymousName()
			}
			v, err := acquire(name, volumes.CreateOptions{Driver: hc.VolumeDriver, Anonymous: anon})
			if err != nil {
				return nil, err
			}
			mp.Type, mp.Name, mp.Source, mp.Driver = mount.TypeVolume, v.Name, v.Mountpoint, v.Driver
			mp.copyData = !hasOption(b.mode, "nocopy")
			if mp.Mode == "" {
				mp.Mode = "z" // moby's setBindModeIfNull for the local driver
			}
		}
		binds[b.target] = true
		points[b.target] = mp
	}
	for _, m := range hc.Mounts {
		dest := path.Clean(m.Target)
		if binds[dest] {
			return nil, duplicate(m.Target)
		}
		mp := &mountPoint{MountPoint: container.MountPoint{Type: m.Type, Destination: dest, RW: !m.ReadOnly}}
		switch m.Type {
		case mount.TypeBind:
			mp.Source = path.Clean(m.Source)
			mp.Propagation = mount.PropagationRPrivate
			if o := m.BindOptions; o != nil && o.Propagation != "" {
				mp.Propagation = o.Propagation
			}
			create := m.BindOptions != nil && m.BindOptions.CreateMountpoint
			if _, err := os.Stat(m.Source); err != nil && (!errors.Is(err, os.ErrNotExist) || !create) {
				if errors.Is(err, os.ErrNotExist) {
					err = fmt.Errorf("bind source path does not exist: %s", m.Source)
				}
				return nil, errdefs.InvalidArgument(fmt.Errorf("invalid mount config for type %q: %w", m.Type, err))
			}
		case mount.TypeVolume:
			name, anon := m.Source, m.Source == ""
			if anon {
				name = volumes.NewAnonymousName()
			}
			o := volumes.CreateOptions{Anonymous: anon}
			mp.copyData = true
			if vo := m.VolumeOptions; vo != nil {
				o.Labels = vo.Labels
				if vo.DriverConfig != nil {
					o.Driver, o.Options = vo.DriverConfig.Name, vo.DriverConfig.Options
				}
				mp.copyData = !vo.NoCopy && vo.Subpath == ""
			}
			v, err := acquire(name, o)
			if err != nil {
				return nil, err
			}
			mp.Name, mp.Source, mp.Driver, mp.Mode = v.Name, v.Mountpoint, v.Driver, "z"
		case mount.TypeTmpfs, mount.TypeImage, mount.TypeNamedPipe, mount.TypeCluster:
			mp.Source = m.Source
		default:
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid mount config for type %q: mount type unknown", m.Type))
		}
		binds[dest] = true
		points[dest] = mp
	}

	// 3. An anonymous volume for every volume of the config that nothing covers yet.
	dests := make([]string, 0, len(cfg.Volumes))
	for v := range cfg.Volumes {
		dests = append(dests, v)
	}
	sort.Strings(dests)
	for _, raw := range dests {
		dest := filepath.Clean(raw)
		if _, ok := points[dest]; ok {
			continue
		}
		if _, tmpfs := hc.Tmpfs[dest]; tmpfs {
			continue
		}
		v, err := acquire(volumes.NewAnonymousName(), volumes.CreateOptions{Driver: hc.VolumeDriver, Anonymous: true})
		if err != nil {
			return nil, err
		}
		points[dest] = &mountPoint{MountPoint: container.MountPoint{Type: mount.TypeVolume, Name: v.Name, Source: v.Mountpoint,
			Destination: dest, Driver: v.Driver, RW: true}, copyData: true, image: true}
	}

	// Volumes of --volumes-from that a bind or mount replaced are not used after all.
	keep := map[string]bool{}
	out := make([]*mountPoint, 0, len(points))
	for _, mp := range points {
		if mp.Type == mount.TypeVolume && mp.Name != "" {
			keep[mp.Name] = true
		}
		out = append(out, mp)
	}
	d.vols.Retain(rec.ID, keep)
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}
