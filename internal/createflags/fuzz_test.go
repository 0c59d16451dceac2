package createflags

import (
	"testing"

	"github.com/moby/moby/api/types/network"
)

// FuzzMount feeds --mount values to the CSV mount parser: it must not panic, and what it
// accepts must have a type and a target.
func FuzzMount(f *testing.F) {
	for _, s := range []string{
		"type=bind,src=/a,dst=/b,ro,bind-propagation=rshared",
		"type=volume,source=v,target=/d,volume-nocopy,volume-label=a=b,volume-opt=o=1,volume-driver=local",
		"type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770",
		`type=bind,"src=/a,b",dst=/c`,
		"type=bind,src=/a,dst=/b,ro,bind-recursive=readonly,bind-propagation=rprivate",
		"type=image,src=img,dst=/i,image-subpath=x",
		"\"unterminated",
		"",
		"=,=,=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMount(s)
		if err != nil {
			return
		}
		if m.Type == "" || m.Target == "" {
			t.Fatalf("parseMount(%q) accepted %+v without type or target", s, m)
		}
	})
}

// FuzzPublish feeds -p values to the port parser: it must not panic, and every bound port
// must also be exposed.
func FuzzPublish(f *testing.F) {
	for _, s := range []string{
		"8080:80", "127.0.0.1:8080:80/udp", "[::1]:80:80", "3300-3303:3300-3303/tcp",
		"1-10", "8000-8010:80", "published=8080,target=80,protocol=udp", "80:80/xyz",
		"::", "[", "65536", "-1", "a=b,=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 64 {
			return // long ranges only take time
		}
		ports, bindings, err := parsePublish([]string{s})
		if err != nil {
			return
		}
		for p := range bindings {
			if _, ok := ports[p]; !ok {
				t.Fatalf("parsePublish(%q): %v bound but not exposed", s, p)
			}
		}
		exposed := network.PortSet{}
		if err := addExposed(exposed, []string{s}); err == nil && len(exposed) == 0 {
			t.Fatalf("addExposed(%q) accepted a value but exposed nothing", s)
		}
	})
}

// FuzzVolumeSpec feeds -v values to the volume spec parser: it must not panic, and an
// accepted spec has a target.
func FuzzVolumeSpec(f *testing.F) {
	for _, s := range []string{"/a:/b:ro", "vol:/data", "/anon", ":/x", "c:\\a:/b", "a", "::", "/a:/b:ro:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseVolumeSpec(s)
		if err != nil {
			return
		}
		if v.target == "" {
			t.Fatalf("parseVolumeSpec(%q) accepted %+v without a target", s, v)
		}
	})
}
