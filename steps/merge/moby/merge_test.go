package moby

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

var id = "0123456789ab" + strings.Repeat("c", 52)

func record(user *container.Config, hc *container.HostConfig, img ocispec.ImageConfig) *spec.Record {
	return &spec.Record{ID: id, Request: &spec.Verified{Config: user, HostConfig: hc},
		Image: &spec.Image{Ref: "busybox", ID: "sha256:abc", Config: dockerspec.DockerOCIImageConfig{ImageConfig: img}}}
}

func TestMergeCommand(t *testing.T) {
	// Every combination of the user's and the image's Entrypoint and Cmd that moby
	// distinguishes: nil, empty, [""] and a value.
	cases := []struct {
		name            string
		uEP, uCmd       []string
		iEP, iCmd       []string
		wantEP, wantCmd []string
		wantPath        string
		wantArgs        []string
		wantErr         string
	}{
		{name: "all from image", iEP: []string{"/ep", "-a"}, iCmd: []string{"c1"}, wantEP: []string{"/ep", "-a"}, wantCmd: []string{"c1"}, wantPath: "/ep", wantArgs: []string{"-a", "c1"}},
		{name: "image cmd only", iCmd: []string{"sh", "-c", "x"}, wantCmd: []string{"sh", "-c", "x"}, wantPath: "sh", wantArgs: []string{"-c", "x"}},
		{name: "user cmd keeps image entrypoint", uCmd: []string{"u"}, iEP: []string{"/ep"}, iCmd: []string{"c1"}, wantEP: []string{"/ep"}, wantCmd: []string{"u"}, wantPath: "/ep", wantArgs: []string{"u"}},
		{name: "user entrypoint drops image cmd", uEP: []string{"/uep"}, iEP: []string{"/ep"}, iCmd: []string{"c1"}, wantEP: []string{"/uep"}, wantPath: "/uep", wantArgs: []string{}},
		{name: "user entrypoint and cmd", uEP: []string{"/uep", "x"}, uCmd: []string{"y"}, iEP: []string{"/ep"}, iCmd: []string{"c1"}, wantEP: []string{"/uep", "x"}, wantCmd: []string{"y"}, wantPath: "/uep", wantArgs: []string{"x", "y"}},
		{name: "empty entrypoint keeps itself and inherits cmd", uEP: []string{}, iEP: []string{"/ep"}, iCmd: []string{"c1", "c2"}, wantEP: []string{}, wantCmd: []string{"c1", "c2"}, wantPath: "c1", wantArgs: []string{"c2"}},
		{name: "reset entrypoint inherits nothing", uEP: []string{""}, uCmd: []string{"u"}, iEP: []string{"/ep"}, iCmd: []string{"c1"}, wantCmd: []string{"u"}, wantPath: "u", wantArgs: []string{}},
		{name: "reset entrypoint without cmd", uEP: []string{""}, iEP: []string{"/ep"}, iCmd: []string{"c1"}, wantErr: "no command specified"},
		{name: "nothing anywhere", wantErr: "no command specified"},
		{name: "empty entrypoint image has none", uEP: []string{}, wantErr: "no command specified"},
		{name: "user empty cmd takes image cmd", uCmd: []string{}, iCmd: []string{"c1"}, wantCmd: []string{"c1"}, wantPath: "c1", wantArgs: []string{}},
		{name: "image reset entrypoint", iEP: []string{""}, iCmd: []string{"c1"}, wantCmd: []string{"c1"}, wantPath: "c1", wantArgs: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(&container.Config{Entrypoint: tc.uEP, Cmd: tc.uCmd}, nil, ocispec.ImageConfig{Entrypoint: tc.iEP, Cmd: tc.iCmd})
			got, err := (&Merger{}).Merge(context.Background(), rec)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v (%v), want InvalidArgument %q", err, errdefs.ClassOf(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := got.Config
			if !reflect.DeepEqual(c.Entrypoint, tc.wantEP) || !reflect.DeepEqual(c.Cmd, tc.wantCmd) {
				t.Errorf("Entrypoint %#v Cmd %#v, want %#v %#v", c.Entrypoint, c.Cmd, tc.wantEP, tc.wantCmd)
			}
			if got.Path != tc.wantPath || !reflect.DeepEqual(got.Args, tc.wantArgs) {
				t.Errorf("Path %q Args %#v, want %q %#v", got.Path, got.Args, tc.wantPath, tc.wantArgs)
			}
		})
	}
}

func TestMergeFields(t *testing.T) {
	p80, p443, p53 := network.MustParsePort("80/tcp"), network.MustParsePort("443/tcp"), network.MustParsePort("53/udp")
	img := ocispec.ImageConfig{
		User:         "app",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "bad/port": {}},
		Env:          []string{"PATH=/usr/bin", "A=image", "B=image", "BARE"},
		Cmd:          []string{"sh"},
		Volumes:      map[string]struct{}{"/data": {}},
		WorkingDir:   "/srv",
		Labels:       map[string]string{"a": "image", "b": "image"},
		StopSignal:   "SIGQUIT",
	}
	cases := []struct {
		name  string
		user  *container.Config
		check func(t *testing.T, c *container.Config)
	}{
		{name: "empty user takes image", user: &container.Config{}, check: func(t *testing.T, c *container.Config) {
			if c.User != "app" || c.WorkingDir != "/srv" || c.StopSignal != "SIGQUIT" {
				t.Errorf("User %q WorkingDir %q StopSignal %q", c.User, c.WorkingDir, c.StopSignal)
			}
			if !slices.Equal(c.Env, img.Env) {
				t.Errorf("Env = %q", c.Env)
			}
			if !reflect.DeepEqual(c.ExposedPorts, network.PortSet{p80: {}, p53: {}}) {
				t.Errorf("ExposedPorts = %v", c.ExposedPorts)
			}
			if !reflect.DeepEqual(c.Volumes, map[string]struct{}{"/data": {}}) {
				t.Errorf("Volumes = %v", c.Volumes)
			}
			if !reflect.DeepEqual(c.Labels, map[string]string{"a": "image", "b": "image"}) {
				t.Errorf("Labels = %v", c.Labels)
			}
		}},
		{name: "user fields win", user: &container.Config{User: "root", WorkingDir: "/w", StopSignal: "SIGTERM"}, check: func(t *testing.T, c *container.Config) {
			if c.User != "root" || c.WorkingDir != "/w" || c.StopSignal != "SIGTERM" {
				t.Errorf("User %q WorkingDir %q StopSignal %q", c.User, c.WorkingDir, c.StopSignal)
			}
		}},
		{name: "env merged by key keeping order", user: &container.Config{Env: []string{"B=user", "C=user", "PATH"}}, check: func(t *testing.T, c *container.Config) {
			want := []string{"B=user", "C=user", "PATH", "A=image", "BARE"}
			if !slices.Equal(c.Env, want) {
				t.Errorf("Env = %q, want %q", c.Env, want)
			}
		}},
		{name: "env keys case sensitive", user: &container.Config{Env: []string{"a=user"}}, check: func(t *testing.T, c *container.Config) {
			want := []string{"a=user", "PATH=/usr/bin", "A=image", "B=image", "BARE"}
			if !slices.Equal(c.Env, want) {
				t.Errorf("Env = %q, want %q", c.Env, want)
			}
		}},
		{name: "labels user wins", user: &container.Config{Labels: map[string]string{"a": "user", "c": "user"}}, check: func(t *testing.T, c *container.Config) {
			if !reflect.DeepEqual(c.Labels, map[string]string{"a": "user", "b": "image", "c": "user"}) {
				t.Errorf("Labels = %v", c.Labels)
			}
		}},
		{name: "ports union", user: &container.Config{ExposedPorts: network.PortSet{p443: {}, p80: {}}}, check: func(t *testing.T, c *container.Config) {
			if !reflect.DeepEqual(c.ExposedPorts, network.PortSet{p80: {}, p443: {}, p53: {}}) {
				t.Errorf("ExposedPorts = %v", c.ExposedPorts)
			}
		}},
		{name: "volumes union", user: &container.Config{Volumes: map[string]struct{}{"/u": {}}}, check: func(t *testing.T, c *container.Config) {
			if !reflect.DeepEqual(c.Volumes, map[string]struct{}{"/u": {}, "/data": {}}) {
				t.Errorf("Volumes = %v", c.Volumes)
			}
		}},
		{name: "image ref and hostname", user: &container.Config{Image: "busybox"}, check: func(t *testing.T, c *container.Config) {
			if c.Image != "busybox" || c.Hostname != "0123456789ab" {
				t.Errorf("Image %q Hostname %q", c.Image, c.Hostname)
			}
		}},
		{name: "user hostname kept", user: &container.Config{Hostname: "h"}, check: func(t *testing.T, c *container.Config) {
			if c.Hostname != "h" {
				t.Errorf("Hostname %q", c.Hostname)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(tc.user, nil, img)
			before := copyConfig(tc.user)
			imgBefore := rec.Image.Config
			imgEnv := slices.Clone(img.Env)
			got, err := (&Merger{}).Merge(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, got.Config)
			if !reflect.DeepEqual(before, tc.user) {
				t.Errorf("Merge changed the request config")
			}
			if !reflect.DeepEqual(imgBefore, rec.Image.Config) || !slices.Equal(imgEnv, img.Env) || len(img.Labels) != 2 {
				t.Errorf("Merge changed the image config")
			}
			// The result must not alias the image: changing it leaves the image alone.
			got.Config.Labels["zz"] = "x"
			if len(img.Labels) != 2 {
				t.Errorf("result labels alias the image's")
			}
		})
	}
}

func TestMergeHostNetworkHostname(t *testing.T) {
	m := &Merger{Hostname: func() (string, error) { return "the-host", nil }}
	got, err := m.Merge(context.Background(), record(&container.Config{Cmd: []string{"sh"}}, &container.HostConfig{NetworkMode: "host"}, ocispec.ImageConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.Hostname != "the-host" {
		t.Errorf("Hostname = %q", got.Config.Hostname)
	}
	m.Hostname = func() (string, error) { return "", errors.New("boom") }
	if _, err := m.Merge(context.Background(), record(&container.Config{Cmd: []string{"sh"}}, &container.HostConfig{NetworkMode: "host"}, ocispec.ImageConfig{})); !errdefs.IsInternal(err) {
		t.Errorf("err = %v, want Internal", err)
	}
	want, _ := os.Hostname()
	got, err = (&Merger{}).Merge(context.Background(), record(&container.Config{Cmd: []string{"sh"}}, &container.HostConfig{NetworkMode: "host"}, ocispec.ImageConfig{}))
	if err != nil || got.Config.Hostname != want {
		t.Errorf("Hostname = %q, %v; want %q", got.Config.Hostname, err, want)
	}
}

func TestMergeLogConfig(t *testing.T) {
	cases := []struct {
		name    string
		lc      container.LogConfig
		wantErr string
		want    container.LogConfig
	}{
		{name: "default driver", want: container.LogConfig{Type: "json-file", Config: map[string]string{}}},
		{name: "json-file options", lc: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3", "compress": "true", "labels": "a", "tag": "{{.Name}}", "mode": "non-blocking", "max-buffer-size": "4m"}},
			want: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3", "compress": "true", "labels": "a", "tag": "{{.Name}}", "mode": "non-blocking", "max-buffer-size": "4m"}}},
		{name: "none skips options", lc: container.LogConfig{Type: "none", Config: map[string]string{"whatever": "x"}}, want: container.LogConfig{Type: "none", Config: map[string]string{"whatever": "x"}}},
		{name: "local", lc: container.LogConfig{Type: "local", Config: map[string]string{"max-size": "1m"}}, want: container.LogConfig{Type: "local", Config: map[string]string{"max-size": "1m"}}},
		{name: "unknown driver", lc: container.LogConfig{Type: "syslog2"}, wantErr: "logger: no log driver named 'syslog2' is registered"},
		{name: "json-file unknown opt", lc: container.LogConfig{Config: map[string]string{"foo": "bar"}}, wantErr: "unknown log opt 'foo' for json-file log driver"},
		{name: "local unknown opt", lc: container.LogConfig{Type: "local", Config: map[string]string{"tag": "x"}}, wantErr: "unknown log opt 'tag' for log driver local"},
		{name: "bad mode", lc: container.LogConfig{Config: map[string]string{"mode": "fast"}}, wantErr: "logger: logging mode not supported: fast"},
		{name: "buffer without non-blocking", lc: container.LogConfig{Config: map[string]string{"max-buffer-size": "4m"}}, wantErr: "logger: max-buffer-size option is only supported with 'mode=non-blocking'"},
		{name: "cache-disabled bad", lc: container.LogConfig{Config: map[string]string{"cache-disabled": "maybe"}}, wantErr: "invalid value for option cache-disabled: maybe"},
		{name: "max-size bad", lc: container.LogConfig{Config: map[string]string{"max-size": "lots"}}, wantErr: "invalid size: 'lots'"},
		{name: "max-size zero", lc: container.LogConfig{Config: map[string]string{"max-size": "0"}}, wantErr: "max-size must be a positive number"},
		{name: "max-file bad", lc: container.LogConfig{Config: map[string]string{"max-file": "x"}}, wantErr: `strconv.Atoi: parsing "x": invalid syntax`},
		{name: "max-file zero", lc: container.LogConfig{Config: map[string]string{"max-file": "0"}}, wantErr: "max-file cannot be less than 1"},
		{name: "compress without rotation", lc: container.LogConfig{Config: map[string]string{"compress": "true", "max-size": "1m"}}, wantErr: "compress cannot be true when max-file is less than 2 or max-size is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := &container.HostConfig{LogConfig: tc.lc}
			orig := container.LogConfig{Type: tc.lc.Type, Config: copyMap(tc.lc.Config)}
			got, err := (&Merger{}).Merge(context.Background(), record(&container.Config{Cmd: []string{"sh"}}, hc, ocispec.ImageConfig{}))
			if !reflect.DeepEqual(hc.LogConfig, orig) {
				t.Errorf("Merge changed the request's log config: %+v", hc.LogConfig)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want InvalidArgument %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.HostConfig.LogConfig, tc.want) {
				t.Errorf("LogConfig = %+v, want %+v", got.HostConfig.LogConfig, tc.want)
			}
		})
	}
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestMergeHealthcheck(t *testing.T) {
	imageHC := &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: time.Second, StartInterval: 2 * time.Second, Retries: 3}
	cases := []struct {
		name string
		user *container.HealthConfig
		want *container.HealthConfig
	}{
		{name: "taken from image", want: imageHC},
		{name: "field-wise", user: &container.HealthConfig{Interval: time.Minute, Retries: 7},
			want: &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Minute, Timeout: 5 * time.Second, StartPeriod: time.Second, StartInterval: 2 * time.Second, Retries: 7}},
		{name: "user test kept", user: &container.HealthConfig{Test: []string{"NONE"}},
			want: &container.HealthConfig{Test: []string{"NONE"}, Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: time.Second, StartInterval: 2 * time.Second, Retries: 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := record(&container.Config{Cmd: []string{"sh"}, Healthcheck: tc.user}, nil, ocispec.ImageConfig{})
			rec.Image.Config.Healthcheck = &dockerspec.HealthcheckConfig{Test: []string{"CMD", "true"}, Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: time.Second, StartInterval: 2 * time.Second, Retries: 3}
			got, err := (&Merger{}).Merge(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Config.Healthcheck, tc.want) {
				t.Errorf("Healthcheck = %+v, want %+v", got.Config.Healthcheck, tc.want)
			}
			if tc.user == nil && got.Config.Healthcheck != nil && &got.Config.Healthcheck.Test[0] == &rec.Image.Config.Healthcheck.Test[0] {
				t.Error("the merged healthcheck shares memory with the image's")
			}
		})
	}
	rec := record(&container.Config{Cmd: []string{"sh"}}, nil, ocispec.ImageConfig{})
	if got, err := (&Merger{}).Merge(context.Background(), rec); err != nil || got.Config.Healthcheck != nil {
		t.Errorf("image without healthcheck: %+v, %v", got.Config.Healthcheck, err)
	}
}

func BenchmarkMerge(b *testing.B) {
	rec := record(&container.Config{Env: []string{"A=1"}, Labels: map[string]string{"x": "y"}}, &container.HostConfig{},
		ocispec.ImageConfig{Env: []string{"PATH=/bin", "A=2"}, Cmd: []string{"sh"}, Labels: map[string]string{"a": "b"}})
	m := &Merger{}
	for b.Loop() {
		if _, err := m.Merge(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

func TestImpl(t *testing.T) {
	impl := Impl()
	x, err := impl.New(context.Background(), core.Env{})
	if err != nil || impl.Stage != spec.StageMerge || impl.Name != "moby" {
		t.Fatalf("Impl = %+v, %v", impl, err)
	}
	if _, ok := x.(core.Merger); !ok {
		t.Errorf("New returned %T", x)
	}
}
