package createflags

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/mount"
)

// parseMount parses one --mount value, a CSV record of key=value fields (docker's syntax):
// type, src/source, dst/destination/target, ro/readonly, consistency, bind-propagation,
// bind-nonrecursive, bind-recursive, volume-subpath, volume-nocopy, volume-label,
// volume-driver, volume-opt, image-subpath, tmpfs-size, tmpfs-mode. The type defaults to
// volume; a source starting with "." is made absolute against the working directory.
func parseMount(value string) (mount.Mount, error) {
	r := csv.NewReader(strings.NewReader(value))
	fields, err := r.Read()
	if err != nil {
		return mount.Mount{}, err
	}

	m := mount.Mount{Type: mount.TypeVolume}
	volumeOpts := func() *mount.VolumeOptions {
		if m.VolumeOptions == nil {
			m.VolumeOptions = &mount.VolumeOptions{Labels: map[string]string{}}
		}
		if m.VolumeOptions.DriverConfig == nil {
			m.VolumeOptions.DriverConfig = &mount.Driver{}
		}
		return m.VolumeOptions
	}
	bindOpts := func() *mount.BindOptions {
		if m.BindOptions == nil {
			m.BindOptions = &mount.BindOptions{}
		}
		return m.BindOptions
	}
	tmpfsOpts := func() *mount.TmpfsOptions {
		if m.TmpfsOptions == nil {
			m.TmpfsOptions = &mount.TmpfsOptions{}
		}
		return m.TmpfsOptions
	}
	imageOpts := func() *mount.ImageOptions {
		if m.ImageOptions == nil {
			m.ImageOptions = &mount.ImageOptions{}
		}
		return m.ImageOptions
	}
	setOnMap := func(target map[string]string, kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if k != "" {
			target[k] = v
		}
	}

	for _, field := range fields {
		key, val, hasValue := strings.Cut(field, "=")
		key = strings.ToLower(key)
		if !hasValue {
			switch key {
			case "readonly", "ro":
				m.ReadOnly = true
			case "volume-nocopy":
				volumeOpts().NoCopy = true
			case "bind-nonrecursive":
				bindOpts().NonRecursive = true
			default:
				return mount.Mount{}, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
			}
			continue
		}
		switch key {
		case "type":
			m.Type = mount.Type(strings.ToLower(val))
		case "source", "src":
			m.Source = val
			if !filepath.IsAbs(val) && strings.HasPrefix(val, ".") {
				if abs, err := filepath.Abs(val); err == nil {
					m.Source = abs
				}
			}
		case "target", "dst", "destination":
			m.Target = val
		case "readonly", "ro":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			m.ReadOnly = b
		case "consistency":
			m.Consistency = mount.Consistency(strings.ToLower(val))
		case "bind-propagation":
			bindOpts().Propagation = mount.Propagation(strings.ToLower(val))
		case "bind-nonrecursive":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			bindOpts().NonRecursive = b
		case "bind-recursive":
			switch val {
			case "enabled":
				bindOpts()
			case "disabled":
				bindOpts().NonRecursive = true
			case "writable":
				bindOpts().ReadOnlyNonRecursive = true
			case "readonly":
				bindOpts().ReadOnlyForceRecursive = true
			default:
				return mount.Mount{}, fmt.Errorf(`invalid value for %s: %s (must be "enabled", "disabled", "writable", or "readonly")`, key, val)
			}
		case "volume-subpath":
			volumeOpts().Subpath = val
		case "volume-nocopy":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for volume-nocopy: %s", val)
			}
			volumeOpts().NoCopy = b
		case "volume-label":
			setOnMap(volumeOpts().Labels, val)
		case "volume-driver":
			volumeOpts().DriverConfig.Name = val
		case "volume-opt":
			d := volumeOpts().DriverConfig
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			setOnMap(d.Options, val)
		case "image-subpath":
			imageOpts().Subpath = val
		case "tmpfs-size":
			n, err := units.RAMInBytes(val)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfsOpts().SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return mount.Mount{}, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfsOpts().Mode = os.FileMode(n)
		default:
			return mount.Mount{}, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}

	switch {
	case m.Type == "":
		return mount.Mount{}, errors.New("type is required")
	case m.Target == "":
		return mount.Mount{}, errors.New("target is required")
	case m.VolumeOptions != nil && m.Type != mount.TypeVolume:
		return mount.Mount{}, fmt.Errorf("cannot mix 'volume-*' options with mount type '%s'", m.Type)
	case m.ImageOptions != nil && m.Type != mount.TypeImage:
		return mount.Mount{}, fmt.Errorf("cannot mix 'image-*' options with mount type '%s'", m.Type)
	case m.BindOptions != nil && m.Type != mount.TypeBind:
		return mount.Mount{}, fmt.Errorf("cannot mix 'bind-*' options with mount type '%s'", m.Type)
	case m.TmpfsOptions != nil && m.Type != mount.TypeTmpfs:
		return mount.Mount{}, fmt.Errorf("cannot mix 'tmpfs-*' options with mount type '%s'", m.Type)
	}
	if b := m.BindOptions; b != nil {
		if b.ReadOnlyNonRecursive && !m.ReadOnly {
			return mount.Mount{}, errors.New("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction")
		}
		if b.ReadOnlyForceRecursive {
			if !m.ReadOnly {
				return mount.Mount{}, errors.New("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction")
			}
			if b.Propagation != mount.PropagationRPrivate {
				return mount.Mount{}, errors.New("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction")
			}
		}
	}
	return m, nil
}

// volumeSpec is what the CLI needs to know of a -v value: whether it names a source (then
// it goes to HostConfig.Binds) and whether that source is a host path.
type volumeSpec struct {
	source, target string
	bind           bool
}

// parseVolumeSpec splits a -v value [SOURCE:]TARGET[:OPTIONS] the way docker's compose
// volume parser does (a one-letter drive such as "c:" is not a separator), and reports the
// CLI's errors for empty sections and too many colons.
func parseVolumeSpec(spec string) (volumeSpec, error) {
	var v volumeSpec
	switch len(spec) {
	case 0:
		return v, errors.New("invalid empty volume spec")
	case 1, 2:
		v.target = spec
		return v, nil
	}
	var buf []rune
	flush := func(last bool) error {
		s := string(buf)
		switch {
		case len(buf) == 0:
			return errors.New("empty section between colons")
		case v.source == "" && last:
			v.target = s
		case v.source == "":
			v.source = s
		case v.target == "":
			v.target = s
		case !last:
			return errors.New("too many colons")
		}
		// The last section holds options (ro, rw, nocopy, a propagation); the daemon checks them.
		return nil
	}
	runes := []rune(spec)
	for i, c := range runes {
		switch {
		case c == ':' && len(buf) == 1 && unicode.IsLetter(buf[0]):
			buf = append(buf, c)
		case c == ':':
			if err := flush(false); err != nil {
				return v, fmt.Errorf("invalid spec: %s: %w", spec, err)
			}
			buf = buf[:0]
		default:
			buf = append(buf, c)
		}
		if i == len(runes)-1 {
			if err := flush(true); err != nil {
				return v, fmt.Errorf("invalid spec: %s: %w", spec, err)
			}
		}
	}
	v.bind = v.source != "" && isHostPath(v.source)
	return v, nil
}

// isHostPath reports whether a -v source is a path (so a bind mount) rather than a volume name.
func isHostPath(source string) bool {
	switch source[0] {
	case '.', '/', '~':
		return true
	}
	if utf8.RuneCountInString(source) == 1 {
		return false
	}
	if strings.HasPrefix(source, `\\`) {
		return true
	}
	first, n := utf8.DecodeRuneInString(source)
	return unicode.IsLetter(first) && source[n] == ':'
}
