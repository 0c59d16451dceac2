package selinux

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	goselinux "github.com/opencontainers/selinux/go-selinux"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

const labelA = "system_u:system_r:container_t:s0:c1,c2"
const labelB = "system_u:system_r:container_t:s0:c3,c4"

var dupA = []string{"label=user:system_u", "label=role:system_r", "label=type:container_t", "label=level:s0:c1,c2"}

// fakeHost is a behavioural fake of core.Host holding records by name.
type fakeHost struct {
	recs  map[string]*spec.Record
	calls []string
}

func (h *fakeHost) Container(_ context.Context, ref string) (*spec.Record, error) {
	h.calls = append(h.calls, ref)
	if ref == "broken" {
		return nil, errdefs.Unavailable(errors.New("store locked"))
	}
	if r, ok := h.recs[ref]; ok {
		return r, nil
	}
	return nil, errdefs.NotFound(errors.New("No such container: " + ref))
}

func (h *fakeHost) Containers(context.Context) ([]*spec.Record, error) { return nil, nil }

func newHost() *fakeHost {
	return &fakeHost{recs: map[string]*spec.Record{
		"a":     {ID: "aaaa", Security: &spec.Security{ProcessLabel: labelA}},
		"a2":    {ID: "aaab", Security: &spec.Security{ProcessLabel: labelA}},
		"b":     {ID: "bbbb", Security: &spec.Security{ProcessLabel: labelB}},
		"plain": {ID: "cccc"},
	}}
}

func rec(hc *container.HostConfig) *spec.Record {
	return &spec.Record{ID: strings.Repeat("f", 64), Request: &spec.Verified{Config: &container.Config{}, HostConfig: hc},
		Merged: &spec.Merged{Config: &container.Config{}, HostConfig: hc}}
}

func TestSecure(t *testing.T) {
	cases := []struct {
		name       string
		hc         *container.HostConfig
		nnp        bool
		wantErr    string
		wantClass  errdefs.Class
		wantOpt    []string
		wantNilOpt bool
		check      func(t *testing.T, s *spec.Security)
	}{
		{name: "nothing", hc: &container.HostConfig{}, wantNilOpt: true},
		{name: "nil host config", hc: nil, wantOpt: nil},
		{name: "privileged disables labels", hc: &container.HostConfig{Privileged: true}, wantOpt: []string{"label=disable"}},
		{name: "host ipc disables labels", hc: &container.HostConfig{IpcMode: "host"}, wantOpt: []string{"label=disable"}},
		{name: "host pid disables labels", hc: &container.HostConfig{PidMode: "host"}, wantOpt: []string{"label=disable"}},
		{name: "user label overrides privileged", hc: &container.HostConfig{Privileged: true, SecurityOpt: []string{"label=type:foo_t"}}, wantOpt: []string{"label=type:foo_t"}},
		{name: "colon label is no override", hc: &container.HostConfig{Privileged: true, SecurityOpt: []string{"label:type:foo_t"}}, wantOpt: []string{"label:type:foo_t", "label=disable"},
			check: func(t *testing.T, s *spec.Security) {
				if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "deprecated") {
					t.Errorf("Warnings = %q", s.Warnings)
				}
			}},
		{name: "user label skips missing ipc container", hc: &container.HostConfig{IpcMode: "container:nosuch", SecurityOpt: []string{"label=disable"}}, wantOpt: []string{"label=disable"}},
		{name: "ipc container label shared", hc: &container.HostConfig{IpcMode: "container:a"}, wantOpt: dupA},
		{name: "pid container label shared", hc: &container.HostConfig{PidMode: "container:a"}, wantOpt: dupA},
		{name: "ipc and pid same label", hc: &container.HostConfig{IpcMode: "container:a", PidMode: "container:a2"}, wantOpt: dupA},
		{name: "ipc and pid different labels", hc: &container.HostConfig{IpcMode: "container:a", PidMode: "container:b"}, wantErr: "--ipc and --pid containers SELinux labels aren't the same", wantClass: errdefs.InvalidArgumentClass},
		{name: "ipc container without label", hc: &container.HostConfig{IpcMode: "container:plain"}, wantNilOpt: true},
		{name: "missing ipc container", hc: &container.HostConfig{IpcMode: "container:nosuch"}, wantErr: "No such container: nosuch", wantClass: errdefs.InvalidArgumentClass},
		{name: "missing pid container", hc: &container.HostConfig{PidMode: "container:gone"}, wantErr: "No such container: gone", wantClass: errdefs.InvalidArgumentClass},
		{name: "host lookup fault kept", hc: &container.HostConfig{PidMode: "container:broken"}, wantErr: "store locked", wantClass: errdefs.UnavailableClass},
		{name: "no-new-privileges", hc: &container.HostConfig{SecurityOpt: []string{"no-new-privileges"}}, check: func(t *testing.T, s *spec.Security) {
			if !s.NoNewPrivileges {
				t.Error("NoNewPrivileges false")
			}
		}},
		{name: "no-new-privileges=false overrides default", nnp: true, hc: &container.HostConfig{SecurityOpt: []string{"no-new-privileges=false"}}, check: func(t *testing.T, s *spec.Security) {
			if s.NoNewPrivileges {
				t.Error("NoNewPrivileges true")
			}
		}},
		{name: "engine default no-new-privileges", nnp: true, hc: &container.HostConfig{}, check: func(t *testing.T, s *spec.Security) {
			if !s.NoNewPrivileges {
				t.Error("NoNewPrivileges false")
			}
		}},
		{name: "no-new-privileges bad bool", hc: &container.HostConfig{SecurityOpt: []string{"no-new-privileges=maybe"}}, wantErr: `invalid --security-opt 2: "no-new-privileges=maybe"`, wantClass: errdefs.InvalidArgumentClass},
		{name: "no separator", hc: &container.HostConfig{SecurityOpt: []string{"foo"}}, wantErr: `invalid --security-opt 1: "foo"`, wantClass: errdefs.InvalidArgumentClass},
		{name: "unknown key", hc: &container.HostConfig{SecurityOpt: []string{"foo=bar"}}, wantErr: `invalid --security-opt 2: "foo=bar"`, wantClass: errdefs.InvalidArgumentClass},
		{name: "apparmor", hc: &container.HostConfig{SecurityOpt: []string{"apparmor=docker-default"}}, check: func(t *testing.T, s *spec.Security) {
			if s.AppArmorProfile != "docker-default" {
				t.Errorf("AppArmorProfile = %q", s.AppArmorProfile)
			}
		}},
		{name: "apparmor colon form", hc: &container.HostConfig{SecurityOpt: []string{"apparmor:unconfined"}}, check: func(t *testing.T, s *spec.Security) {
			if s.AppArmorProfile != "unconfined" || len(s.Warnings) != 1 {
				t.Errorf("AppArmorProfile = %q, warnings %q", s.AppArmorProfile, s.Warnings)
			}
		}},
		{name: "seccomp unconfined", hc: &container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}, check: func(t *testing.T, s *spec.Security) {
			if s.SeccompProfile != "unconfined" {
				t.Errorf("SeccompProfile = %q", s.SeccompProfile)
			}
		}},
		{name: "seccomp builtin", hc: &container.HostConfig{SecurityOpt: []string{"seccomp=builtin"}}, check: func(t *testing.T, s *spec.Security) {
			if s.SeccompProfile != "builtin" {
				t.Errorf("SeccompProfile = %q", s.SeccompProfile)
			}
		}},
		{name: "seccomp json", hc: &container.HostConfig{SecurityOpt: []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`}}, check: func(t *testing.T, s *spec.Security) {
			if s.SeccompProfile != `{"defaultAction":"SCMP_ACT_ALLOW"}` {
				t.Errorf("SeccompProfile = %q", s.SeccompProfile)
			}
		}},
		{name: "seccomp bad json", hc: &container.HostConfig{SecurityOpt: []string{"seccomp=/etc/profile.json"}}, wantErr: `invalid --security-opt 2: "seccomp=/etc/profile.json": invalid character '/' looking for beginning of value`, wantClass: errdefs.InvalidArgumentClass},
		{name: "systempaths unconfined", hc: &container.HostConfig{SecurityOpt: []string{"systempaths=unconfined"}}},
		{name: "systempaths other", hc: &container.HostConfig{SecurityOpt: []string{"systempaths=x"}}, wantErr: `invalid --security-opt 2: "systempaths=x"`, wantClass: errdefs.InvalidArgumentClass},
		{name: "writable-cgroups", hc: &container.HostConfig{SecurityOpt: []string{"writable-cgroups=true", "writable-cgroups"}}},
		{name: "bare disable", hc: &container.HostConfig{SecurityOpt: []string{"disable"}}, wantOpt: []string{"disable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost()
			s := &Securer{Host: h, NoNewPrivileges: tc.nnp}
			var before []string
			if tc.hc != nil {
				before = append([]string(nil), tc.hc.SecurityOpt...)
			}
			got, err := s.Secure(context.Background(), rec(tc.hc))
			if tc.hc != nil && !reflect.DeepEqual(before, tc.hc.SecurityOpt) && !(before == nil && len(tc.hc.SecurityOpt) == 0) {
				t.Errorf("Secure changed the request's SecurityOpt: %q", tc.hc.SecurityOpt)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if errdefs.ClassOf(err) != tc.wantClass {
					t.Errorf("class = %v, want %v", errdefs.ClassOf(err), tc.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantOpt != nil && !reflect.DeepEqual(got.SecurityOpt, tc.wantOpt) {
				t.Errorf("SecurityOpt = %q, want %q", got.SecurityOpt, tc.wantOpt)
			}
			if (tc.wantNilOpt || tc.wantOpt == nil && tc.hc == nil) && got.SecurityOpt != nil {
				t.Errorf("SecurityOpt = %q, want nil (moby shows null when nothing was added)", got.SecurityOpt)
			}
			if !goselinux.GetEnabled() && (got.ProcessLabel != "" || got.MountLabel != "") {
				t.Errorf("SELinux disabled but labels %q %q", got.ProcessLabel, got.MountLabel)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
			if err := s.Undo(context.Background(), &spec.Record{Security: got}); err != nil {
				t.Errorf("Undo: %v", err)
			}
		})
	}
}

// With the label option given, the --ipc container is not looked up at all (moby #34317).
func TestUserLabelSkipsLookup(t *testing.T) {
	h := newHost()
	s := &Securer{Host: h}
	if _, err := s.Secure(context.Background(), rec(&container.HostConfig{IpcMode: "container:a", SecurityOpt: []string{"label=level:s0"}})); err != nil {
		t.Fatal(err)
	}
	if len(h.calls) != 0 {
		t.Errorf("host looked up %q", h.calls)
	}
}

func TestSecureUsesRequestWithoutMerged(t *testing.T) {
	r := rec(&container.HostConfig{Privileged: true})
	r.Merged = nil
	got, err := (&Securer{}).Secure(context.Background(), r)
	if err != nil || !reflect.DeepEqual(got.SecurityOpt, []string{"label=disable"}) {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestLabelsWhenSELinuxEnabled(t *testing.T) {
	if !goselinux.GetEnabled() {
		t.Skip("SELinux is disabled on this host: label.InitLabels returns empty labels and accepts any option, which TestSecure checks")
	}
	s := &Securer{}
	got, err := s.Secure(context.Background(), rec(&container.HostConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	if got.ProcessLabel == "" || got.MountLabel == "" {
		t.Errorf("labels %q %q", got.ProcessLabel, got.MountLabel)
	}
	if err := s.Undo(context.Background(), &spec.Record{Security: got}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secure(context.Background(), rec(&container.HostConfig{SecurityOpt: []string{"label=foo:bar"}})); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad label option: err = %v", err)
	}
}

func TestUndo(t *testing.T) {
	s := &Securer{}
	for _, r := range []*spec.Record{nil, {}, {Security: &spec.Security{}}, {Security: &spec.Security{ProcessLabel: labelA}}} {
		for range 2 { // idempotent
			if err := s.Undo(context.Background(), r); err != nil {
				t.Errorf("Undo(%+v) = %v", r, err)
			}
		}
	}
}

func TestImpl(t *testing.T) {
	impl := Impl()
	if impl.Stage != spec.StageSecurity || impl.Name != "selinux" {
		t.Errorf("Impl = %+v", impl)
	}
}

// TestDefaultPaths checks moby's createContainerOSSpecificSettings rule: nil masked and
// read-only paths become the OCI defaults unless the container is privileged, and what the
// request gave, [] included, is kept.
func TestDefaultPaths(t *testing.T) {
	s := &Securer{}
	for _, tc := range []struct {
		name             string
		hc               *container.HostConfig
		masked, ro       []string
		maskedNil, roNil bool
	}{
		{name: "defaults", hc: &container.HostConfig{}, masked: DefaultMaskedPaths(), ro: DefaultReadonlyPaths()},
		{name: "privileged", hc: &container.HostConfig{Privileged: true}, maskedNil: true, roNil: true},
		{name: "empty kept", hc: &container.HostConfig{MaskedPaths: []string{}, ReadonlyPaths: []string{}}, masked: []string{}, ro: []string{}},
		{name: "custom kept", hc: &container.HostConfig{MaskedPaths: []string{"/proc/x"}}, masked: []string{"/proc/x"}, ro: DefaultReadonlyPaths()},
		{name: "privileged custom", hc: &container.HostConfig{Privileged: true, ReadonlyPaths: []string{"/proc/y"}}, maskedNil: true, ro: []string{"/proc/y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Secure(context.Background(), &spec.Record{ID: "x", Merged: &spec.Merged{HostConfig: tc.hc}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.maskedNil != (got.MaskedPaths == nil) || !tc.maskedNil && !reflect.DeepEqual(got.MaskedPaths, tc.masked) {
				t.Errorf("MaskedPaths = %#v, want %#v (nil %v)", got.MaskedPaths, tc.masked, tc.maskedNil)
			}
			if tc.roNil != (got.ReadonlyPaths == nil) || !tc.roNil && !reflect.DeepEqual(got.ReadonlyPaths, tc.ro) {
				t.Errorf("ReadonlyPaths = %#v, want %#v (nil %v)", got.ReadonlyPaths, tc.ro, tc.roNil)
			}
		})
	}
	if m := DefaultMaskedPaths(); len(m) < 12 || m[0] != "/proc/asound" || m[11] != "/sys/devices/virtual/powercap" {
		t.Errorf("DefaultMaskedPaths = %q", m)
	}
	// The CPUs' part is listed once: each call must still return a list of its own.
	m := DefaultMaskedPaths()
	for i := range m {
		m[i] = "changed"
	}
	if again := DefaultMaskedPaths(); again[len(again)-1] == "changed" || again[0] != "/proc/asound" {
		t.Errorf("DefaultMaskedPaths shares its list between calls: %q", again)
	}
}
