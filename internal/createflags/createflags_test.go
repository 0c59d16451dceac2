package createflags

import (
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/pflag"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// parse runs a create command line (flags, image, command) through a fresh flag set, as
// `slipway create` does.
func parse(t *testing.T, args ...string) (*spec.CreateRequest, error) {
	t.Helper()
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, FlagError(err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		t.Fatalf("no image in %q", args)
	}
	return o.Request(fs, rest[0], rest[1:])
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

func port(s string) network.Port { return network.MustParsePort(s) }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func ptr[T any](v T) *T { return &v }

// baseline is what `create busybox` sends, field by field.
func baseline() *spec.CreateRequest {
	return &spec.CreateRequest{
		Config: &container.Config{
			AttachStdout: true,
			AttachStderr: true,
			ExposedPorts: network.PortSet{},
			Image:        "busybox",
			Volumes:      map[string]struct{}{},
			Labels:       map[string]string{},
		},
		HostConfig: &container.HostConfig{
			LogConfig:     container.LogConfig{Config: map[string]string{}},
			NetworkMode:   "default",
			PortBindings:  network.PortMap{},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
			DNS:           []netip.Addr{},
			DNSOptions:    []string{},
			DNSSearch:     []string{},
			StorageOpt:    map[string]string{},
			Tmpfs:         map[string]string{},
			Sysctls:       map[string]string{},
			Annotations:   map[string]string{},
			Resources: container.Resources{
				Devices:              []container.DeviceMapping{},
				BlkioWeightDevice:    []*blkiodev.WeightDevice{},
				BlkioDeviceReadBps:   []*blkiodev.ThrottleDevice{},
				BlkioDeviceWriteBps:  []*blkiodev.ThrottleDevice{},
				BlkioDeviceReadIOps:  []*blkiodev.ThrottleDevice{},
				BlkioDeviceWriteIOps: []*blkiodev.ThrottleDevice{},
				MemorySwappiness:     ptr(int64(-1)),
				OomKillDisable:       ptr(false),
				PidsLimit:            ptr(int64(0)),
				Ulimits:              []*container.Ulimit{},
			},
		},
		NetworkingConfig: &network.NetworkingConfig{
			EndpointsConfig: map[string]*network.EndpointSettings{"default": {}},
		},
	}
}

func TestBaseline(t *testing.T) {
	got, err := parse(t, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "request", got, baseline())
}

// TestObservedBody checks the wire form against the body the docker CLI 28.2.2 was seen to
// send for the same command line (research/docker-api.md, "docker create: body").
func TestObservedBody(t *testing.T) {
	t.Setenv("BAZ", "") // restored after the test
	os.Unsetenv("BAZ")
	got, err := parse(t, "--name", "web", "-e", "FOO=bar", "-e", "BAZ", "--network", "mynet", "--ip", "10.1.2.3", "busybox", "sh", "-c", "echo hi")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "web" {
		t.Errorf("Name = %q", got.Name)
	}
	body := container.CreateRequest{Config: got.Config, HostConfig: got.HostConfig, NetworkingConfig: got.NetworkingConfig}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"AttachStdin":false,"AttachStdout":true,"AttachStderr":true`,
		`"Env":["FOO=bar","BAZ"],"Cmd":["sh","-c","echo hi"]`,
		`"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null`,
		`"Labels":{}`,
		`"Binds":null`,
		`"LogConfig":{"Type":"","Config":{}},"NetworkMode":"mynet","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0}`,
		`"Dns":[]`,
		`"MemorySwappiness":-1`,
		`"Devices":[]`,
		// Seen by TestCLIInspectMatchesMoby's comparison through slipway serve (docker 28.2.2).
		`"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[]`,
		`"Ulimits":[]`,
		`"MaskedPaths":null,"ReadonlyPaths":null`,
		`"EndpointsConfig":{"mynet":{"IPAMConfig":{"IPv4Address":"10.1.2.3"},"Links":null,"Aliases":null`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("body lacks %s\nbody: %s", want, b)
		}
	}
}

func TestRequest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	envFile := write("app.env", "\xEF\xBB\xBF# a comment\n\nA=1\n   # indented comment\n  B=two words  \nSLIPWAY_T_SET\nSLIPWAY_T_UNSET\nQ=\"quoted\"\nEMPTY=\n")
	badEnvFile := write("bad.env", "bad key=1\n")
	noNameEnvFile := write("noname.env", "=x\n")
	labelFile := write("labels", "# labels\nteam=infra\nbare\nowner=a\n")
	seccomp := write("seccomp.json", "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [ ]\n}\n")
	badSeccomp := write("bad-seccomp.json", "{not json")
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("SLIPWAY_T_SET", "from-env")
	os.Unsetenv("SLIPWAY_T_UNSET")

	type check func(t *testing.T, r *spec.CreateRequest)
	cases := []struct {
		name string
		args []string
		want check
		err  string
	}{
		// Environment.
		{name: "env value and unset bare name", args: []string{"-e", "FOO=bar", "-e", "SLIPWAY_T_UNSET", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Env", r.Config.Env, []string{"FOO=bar", "SLIPWAY_T_UNSET"})
		}},
		{name: "env bare name from environment", args: []string{"-e", "SLIPWAY_T_SET", "--env", "E=", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Env", r.Config.Env, []string{"SLIPWAY_T_SET=from-env", "E="})
		}},
		{name: "env repeated name keeps last value", args: []string{"-e", "A=1", "-e", "B=2", "-e", "A=3", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Env", r.Config.Env, []string{"A=3", "B=2"})
		}},
		{name: "env empty name", args: []string{"-e", "=x", "img"}, err: `invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x`},
		{name: "env-file with comments then flags", args: []string{"--env-file", envFile, "-e", "A=override", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Env", r.Config.Env, []string{"A=1", "B=two words  ", "SLIPWAY_T_SET=from-env", `Q="quoted"`, "EMPTY=", "A=override"})
		}},
		{name: "env-file missing", args: []string{"--env-file", filepath.Join(dir, "nope.env"), "img"}, err: "open " + filepath.Join(dir, "nope.env") + ": no such file or directory"},
		{name: "env-file key with space", args: []string{"--env-file", badEnvFile, "img"}, err: "invalid env file (" + badEnvFile + "): variable 'bad key' contains whitespaces"},
		{name: "env-file line without name", args: []string{"--env-file", noNameEnvFile, "img"}, err: "invalid env file (" + noNameEnvFile + "): no variable name on line '=x'"},

		// Labels.
		{name: "labels", args: []string{"-l", "a=b", "--label", "c", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Labels", r.Config.Labels, map[string]string{"a": "b", "c": ""})
		}},
		{name: "label-file then flags", args: []string{"--label-file", labelFile, "-l", "owner=b", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Labels", r.Config.Labels, map[string]string{"team": "infra", "owner": "b"})
		}},
		{name: "label empty name", args: []string{"-l", "=x", "img"}, err: `invalid argument "=x" for "-l, --label" flag: invalid label '=x': empty name`},
		{name: "label with space", args: []string{"-l", "a b=c", "img"}, err: `invalid argument "a b=c" for "-l, --label" flag: label 'a b' contains whitespaces`},

		// Command line, entrypoint and identity.
		{name: "entrypoint", args: []string{"--entrypoint", "/bin/sh", "img", "-c", "true"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Entrypoint", r.Config.Entrypoint, []string{"/bin/sh"})
			eq(t, "Cmd", r.Config.Cmd, []string{"-c", "true"})
		}},
		{name: "entrypoint empty resets", args: []string{"--entrypoint=", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Entrypoint", r.Config.Entrypoint, []string{""})
			eq(t, "Cmd", r.Config.Cmd, []string(nil))
		}},
		{name: "entrypoint unset", args: []string{"img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Entrypoint", r.Config.Entrypoint, []string(nil))
		}},
		{name: "flags after the image belong to the command", args: []string{"img", "-e", "X=1", "--rm"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Cmd", r.Config.Cmd, []string{"-e", "X=1", "--rm"})
			eq(t, "Env", r.Config.Env, []string(nil))
			eq(t, "AutoRemove", r.HostConfig.AutoRemove, false)
		}},
		{name: "identity strings", args: []string{"--name", "web", "-w", "/app", "-u", "1000:1000", "-h", "box", "--domainname", "example.com", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Name", r.Name, "web")
			eq(t, "WorkingDir", r.Config.WorkingDir, "/app")
			eq(t, "User", r.Config.User, "1000:1000")
			eq(t, "Hostname", r.Config.Hostname, "box")
			eq(t, "Domainname", r.Config.Domainname, "example.com")
		}},
		{name: "interactive tty", args: []string{"-i", "-t", "--rm", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			c := r.Config
			eq(t, "stdio", []bool{c.Tty, c.OpenStdin, c.StdinOnce, c.AttachStdin, c.AttachStdout, c.AttachStderr}, []bool{true, true, true, true, true, true})
			eq(t, "AutoRemove", r.HostConfig.AutoRemove, true)
		}},
		{name: "attach stdout only", args: []string{"-a", "STDOUT", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			c := r.Config
			eq(t, "attach", []bool{c.AttachStdin, c.AttachStdout, c.AttachStderr, c.StdinOnce}, []bool{false, true, false, false})
		}},
		{name: "attach bad stream", args: []string{"-a", "foo", "img"}, err: `invalid argument "foo" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`},
		{name: "unknown flag", args: []string{"--bogus", "img"}, err: "unknown flag: --bogus"},

		// Ports.
		{name: "publish host:container", args: []string{"-p", "8080:80", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "ExposedPorts", r.Config.ExposedPorts, network.PortSet{port("80/tcp"): {}})
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("80/tcp"): {{HostPort: "8080"}}})
		}},
		{name: "publish ip:host:container/udp", args: []string{"-p", "127.0.0.1:5353:53/UDP", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("53/udp"): {{HostIP: addr("127.0.0.1"), HostPort: "5353"}}})
		}},
		{name: "publish ipv6 in brackets", args: []string{"-p", "[::1]:8080:80", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("80/tcp"): {{HostIP: addr("::1"), HostPort: "8080"}}})
		}},
		{name: "publish range to range", args: []string{"-p", "3300-3302:3300-3302/tcp", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{
				port("3300/tcp"): {{HostPort: "3300"}},
				port("3301/tcp"): {{HostPort: "3301"}},
				port("3302/tcp"): {{HostPort: "3302"}},
			})
			eq(t, "ExposedPorts", len(r.Config.ExposedPorts), 3)
		}},
		{name: "publish container port only", args: []string{"-p", "80", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("80/tcp"): {{}}})
		}},
		{name: "publish host range to one port", args: []string{"-p", "8000-8010:80", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("80/tcp"): {{HostPort: "8000-8010"}}})
		}},
		{name: "publish twice to one port", args: []string{"-p", "8080:80", "-p", "127.0.0.1:9090:80", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("80/tcp"): {{HostPort: "8080"}, {HostIP: addr("127.0.0.1"), HostPort: "9090"}}})
		}},
		{name: "publish long syntax", args: []string{"-p", "published=8080,target=80,protocol=udp", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PortBindings", r.HostConfig.PortBindings, network.PortMap{port("80/udp"): {{HostPort: "8080"}}})
		}},
		{name: "publish large range", args: []string{"-p", "1-65535", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "ExposedPorts", len(r.Config.ExposedPorts), 65535)
			eq(t, "PortBindings", len(r.HostConfig.PortBindings), 65535)
		}},
		{name: "publish long syntax bad field", args: []string{"-p", "published=8080,x", "img"}, err: "invalid publish opts format (should be name=value but got 'x')"},
		{name: "publish bad proto", args: []string{"-p", "80:80/xyz", "img"}, err: "invalid proto: xyz"},
		{name: "publish bad ip", args: []string{"-p", "1.2.3:80:80", "img"}, err: "invalid IP address: 1.2.3"},
		{name: "publish mismatched ranges", args: []string{"-p", "80-81:90-95", "img"}, err: "invalid ranges specified for container and host Ports: 90-95 and 80-81"},
		{name: "publish bad container port", args: []string{"-p", "8080:http", "img"}, err: "invalid containerPort: http"},
		{name: "expose ports and ranges", args: []string{"--expose", "80", "--expose", "1000-1002/udp", "-p", "8080:80", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "ExposedPorts", r.Config.ExposedPorts, network.PortSet{port("80/tcp"): {}, port("1000/udp"): {}, port("1001/udp"): {}, port("1002/udp"): {}})
			eq(t, "PortBindings", len(r.HostConfig.PortBindings), 1)
		}},
		{name: "expose with colon", args: []string{"--expose", "80:80", "img"}, err: "invalid port format for --expose: 80:80"},
		{name: "expose reversed range", args: []string{"--expose", "90-80", "img"}, err: "invalid range format for --expose: 90-80, error: invalid port range: 90-80"},
		{name: "publish all", args: []string{"-P", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PublishAllPorts", r.HostConfig.PublishAllPorts, true)
		}},

		// Networks.
		{name: "network with ip", args: []string{"--network", "mynet", "--ip", "10.1.2.3", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "NetworkMode", r.HostConfig.NetworkMode, container.NetworkMode("mynet"))
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{
				"mynet": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: addr("10.1.2.3")}},
			})
		}},
		{name: "single network without options has no entry", args: []string{"--network", "mynet", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{})
		}},
		{name: "host network", args: []string{"--net", "host", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "NetworkMode", r.HostConfig.NetworkMode, container.NetworkMode("host"))
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{})
		}},
		{name: "ip without network goes to default", args: []string{"--ip", "10.0.0.2", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{
				"default": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: addr("10.0.0.2")}},
			})
		}},
		{name: "two networks", args: []string{"--network", "a", "--network", "b", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "NetworkMode", r.HostConfig.NetworkMode, container.NetworkMode("a"))
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{"a": {}, "b": {}})
		}},
		{name: "alias ip6 and mac on a user network", args: []string{"--network", "mynet", "--network-alias", "web", "--net-alias", "www", "--ip6", "2001:db8::33", "--mac-address", "92:d0:c6:0a:29:33", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{
				"mynet": {
					Aliases:    []string{"web", "www"},
					IPAMConfig: &network.EndpointIPAMConfig{IPv6Address: addr("2001:db8::33")},
					MacAddress: network.HardwareAddr{0x92, 0xd0, 0xc6, 0x0a, 0x29, 0x33},
				},
			})
		}},
		{name: "network long syntax", args: []string{"--network", "name=mynet,alias=x,ip=10.0.0.5,link-local-ip=169.254.1.1,driver-opt=com.example.k=V,gw-priority=3", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{
				"mynet": {
					Aliases:    []string{"x"},
					DriverOpts: map[string]string{"com.example.k": "v"},
					GwPriority: 3,
					IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: addr("10.0.0.5"), LinkLocalIPs: []netip.Addr{addr("169.254.1.1")}},
				},
			})
		}},
		{name: "links on a user network", args: []string{"--link", "db:database", "--network", "mynet", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Links", r.HostConfig.Links, []string{"db:database"})
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{"mynet": {Links: []string{"db:database"}}})
		}},
		{name: "links on the default network", args: []string{"--link", "db", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Links", r.HostConfig.Links, []string{"db"})
			eq(t, "EndpointsConfig", r.NetworkingConfig.EndpointsConfig, map[string]*network.EndpointSettings{"default": {}})
		}},
		{name: "link bad format", args: []string{"--link", "a:b:c", "img"}, err: `invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c`},
		{name: "alias on the default network", args: []string{"--network-alias", "web", "img"}, err: "network-scoped aliases are only supported for user-defined networks"},
		{name: "user and builtin networks", args: []string{"--network", "bridge", "--network", "mynet", "img"}, err: "conflicting options: cannot attach both user-defined and non-user-defined network-modes"},
		{name: "network twice", args: []string{"--network", "a", "--network", "a", "img"}, err: `network "a" is specified multiple times`},
		{name: "alias flag and per-network alias", args: []string{"--network", "name=mynet,alias=x", "--network-alias", "y", "img"}, err: "conflicting options: cannot specify both --network-alias and per-network alias"},
		{name: "network long syntax bad key", args: []string{"--network", "name=x,foo=bar", "img"}, err: `invalid argument "name=x,foo=bar" for "--network" flag: invalid field key foo`},
		{name: "network long syntax no name", args: []string{"--network", "alias=x", "img"}, err: `invalid argument "alias=x" for "--network" flag: network name/id is not specified`},
		{name: "bad mac address", args: []string{"--mac-address", "nope", "img"}, err: "nope is not a valid mac address"},
		{name: "ipv6 given to --ip", args: []string{"--network", "mynet", "--ip", "2001:db8::1", "img"}, err: "invalid IPv4 address: 2001:db8::1"},
		{name: "dns", args: []string{"--dns", "8.8.8.8", "--dns", "2001:4860:4860::8888", "--dns-search", "example.com", "--dns-option", "ndots:2", "--dns-opt", "timeout:1", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "DNS", r.HostConfig.DNS, []netip.Addr{addr("8.8.8.8"), addr("2001:4860:4860::8888")})
			eq(t, "DNSSearch", r.HostConfig.DNSSearch, []string{"example.com"})
			eq(t, "DNSOptions", r.HostConfig.DNSOptions, []string{"ndots:2", "timeout:1"})
		}},
		{name: "dns bad address", args: []string{"--dns", "bad", "img"}, err: `invalid argument "bad" for "--dns" flag: IP address is not correctly formatted: bad`},
		{name: "dns-search bad domain", args: []string{"--dns-search", "-bad-", "img"}, err: `invalid argument "-bad-" for "--dns-search" flag: -bad- is not a valid domain`},
		{name: "add-host forms", args: []string{"--add-host", "a:1.2.3.4", "--add-host", "b=::1", "--add-host", "c:[2001:db8::2]", "--add-host", "host.docker.internal:host-gateway", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "ExtraHosts", r.HostConfig.ExtraHosts, []string{"a:1.2.3.4", "b:::1", "c:2001:db8::2", "host.docker.internal:host-gateway"})
		}},
		{name: "add-host no address", args: []string{"--add-host", "bad", "img"}, err: `invalid argument "bad" for "--add-host" flag: bad format for add-host: "bad"`},
		{name: "add-host bad address", args: []string{"--add-host", "a:1.2.3", "img"}, err: `invalid argument "a:1.2.3" for "--add-host" flag: invalid IP address in add-host: "1.2.3"`},

		// Security and namespaces.
		{name: "seccomp file is sent compacted", args: []string{"--security-opt", "seccomp=" + seccomp, "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "SecurityOpt", r.HostConfig.SecurityOpt, []string{`seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}`})
		}},
		{name: "seccomp unconfined and others kept", args: []string{"--security-opt", "seccomp=unconfined", "--security-opt", "label:disable", "--security-opt", "no-new-privileges", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "SecurityOpt", r.HostConfig.SecurityOpt, []string{"seccomp=unconfined", "label:disable", "no-new-privileges"})
		}},
		{name: "systempaths unconfined", args: []string{"--security-opt", "systempaths=unconfined", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "SecurityOpt", r.HostConfig.SecurityOpt, []string{})
			eq(t, "MaskedPaths", r.HostConfig.MaskedPaths, []string{})
			eq(t, "ReadonlyPaths", r.HostConfig.ReadonlyPaths, []string{})
		}},
		{name: "security-opt without value", args: []string{"--security-opt", "apparmor", "img"}, err: `Invalid --security-opt: "apparmor"`},
		{name: "seccomp file missing", args: []string{"--security-opt", "seccomp=" + filepath.Join(dir, "none.json"), "img"}, err: "opening seccomp profile (" + filepath.Join(dir, "none.json") + ") failed: open " + filepath.Join(dir, "none.json") + ": no such file or directory"},
		{name: "seccomp file not json", args: []string{"--security-opt", "seccomp=" + badSeccomp, "img"}, err: "compacting json for seccomp profile (" + badSeccomp + ") failed: invalid character 'n' looking for beginning of object key string"},
		{name: "privileges and namespaces", args: []string{"--privileged", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--ipc", "host", "--pid", "host", "--uts", "host", "--userns", "host", "--cgroupns", "private", "--cgroup-parent", "/slipway", "--group-add", "audio", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			h := r.HostConfig
			eq(t, "Privileged", h.Privileged, true)
			eq(t, "CapAdd", h.CapAdd, []string{"NET_ADMIN"})
			eq(t, "CapDrop", h.CapDrop, []string{"ALL"})
			eq(t, "modes", []string{string(h.IpcMode), string(h.PidMode), string(h.UTSMode), string(h.UsernsMode), string(h.CgroupnsMode)}, []string{"host", "host", "host", "host", "private"})
			eq(t, "CgroupParent", h.CgroupParent, "/slipway")
			eq(t, "GroupAdd", h.GroupAdd, []string{"audio"})
		}},
		{name: "pid of a container", args: []string{"--pid", "container:db", "--ipc", "container:db", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "PidMode", r.HostConfig.PidMode, container.PidMode("container:db"))
			eq(t, "IpcMode", r.HostConfig.IpcMode, container.IpcMode("container:db"))
		}},
		{name: "bad pid mode", args: []string{"--pid", "bad", "img"}, err: "--pid: invalid PID mode"},
		{name: "bad uts mode", args: []string{"--uts", "bad", "img"}, err: "--uts: invalid UTS mode"},
		{name: "bad userns mode", args: []string{"--userns", "bad", "img"}, err: "--userns: invalid USER mode"},
		{name: "bad cgroupns mode", args: []string{"--cgroupns", "bad", "img"}, err: "--cgroupns: invalid CGROUP mode"},

		// Resources.
		{name: "memory sizes", args: []string{"-m", "64m", "--memory-swap", "-1", "--memory-reservation", "32M", "--shm-size", "1g", "--memory-swappiness", "10", "--oom-kill-disable", "--oom-score-adj", "500", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			h := r.HostConfig
			eq(t, "Memory", h.Memory, int64(64<<20))
			eq(t, "MemorySwap", h.MemorySwap, int64(-1))
			eq(t, "MemoryReservation", h.MemoryReservation, int64(32<<20))
			eq(t, "ShmSize", h.ShmSize, int64(1<<30))
			eq(t, "MemorySwappiness", *h.MemorySwappiness, int64(10))
			eq(t, "OomKillDisable", *h.OomKillDisable, true)
			eq(t, "OomScoreAdj", h.OomScoreAdj, 500)
		}},
		{name: "memory swap size", args: []string{"-m", "1g", "--memory-swap", "2g", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "MemorySwap", r.HostConfig.MemorySwap, int64(2<<30))
		}},
		{name: "memory bad size", args: []string{"-m", "lots", "img"}, err: `invalid argument "lots" for "-m, --memory" flag: invalid size: 'lots'`},
		{name: "memory-swap bad size", args: []string{"--memory-swap", "-2", "img"}, err: `invalid argument "-2" for "--memory-swap" flag: invalid size: '-2'`},
		{name: "swappiness out of range", args: []string{"--memory-swappiness", "101", "img"}, err: "invalid value: 101. Valid memory swappiness range is 0-100"},
		{name: "kernel-memory accepted and dropped", args: []string{"--kernel-memory", "10m", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "request", r, baseline2("img"))
		}},
		{name: "cpus", args: []string{"--cpus", "1.5", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "NanoCPUs", r.HostConfig.NanoCPUs, int64(1500000000))
		}},
		{name: "cpus too precise", args: []string{"--cpus", "0.0000000001", "img"}, err: `invalid argument "0.0000000001" for "--cpus" flag: value is too precise`},
		{name: "cpus not a number", args: []string{"--cpus", "two", "img"}, err: `invalid argument "two" for "--cpus" flag: failed to parse two as a rational number`},
		{name: "cpu and io knobs", args: []string{"-c", "512", "--cpu-period", "100000", "--cpu-quota", "50000", "--cpu-rt-period", "1000", "--cpu-rt-runtime", "900", "--cpuset-cpus", "0-1", "--cpuset-mems", "0", "--blkio-weight", "300", "--pids-limit", "100", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			h := r.HostConfig
			eq(t, "cpu", []int64{h.CPUShares, h.CPUPeriod, h.CPUQuota, h.CPURealtimePeriod, h.CPURealtimeRuntime}, []int64{512, 100000, 50000, 1000, 900})
			eq(t, "cpuset", []string{h.CpusetCpus, h.CpusetMems}, []string{"0-1", "0"})
			eq(t, "BlkioWeight", h.BlkioWeight, uint16(300))
			eq(t, "PidsLimit", *h.PidsLimit, int64(100))
		}},
		{name: "cpu-shares not a number", args: []string{"-c", "x", "img"}, err: `invalid argument "x" for "-c, --cpu-shares" flag: strconv.ParseInt: parsing "x": invalid syntax`},
		{name: "ulimits sorted by name", args: []string{"--ulimit", "nproc=10", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=20", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Ulimits", r.HostConfig.Ulimits, []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 20, Hard: 20}})
		}},
		{name: "ulimit bad", args: []string{"--ulimit", "bad", "img"}, err: `invalid argument "bad" for "--ulimit" flag: invalid ulimit argument: bad`},
		{name: "ulimit unknown", args: []string{"--ulimit", "foo=1", "img"}, err: `invalid argument "foo=1" for "--ulimit" flag: invalid ulimit type: foo`},

		// Restart, health, stop.
		{name: "restart always", args: []string{"--restart", "always", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "RestartPolicy", r.HostConfig.RestartPolicy, container.RestartPolicy{Name: container.RestartPolicyAlways})
		}},
		{name: "restart on-failure with count", args: []string{"--restart", "on-failure:5", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "RestartPolicy", r.HostConfig.RestartPolicy, container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 5})
		}},
		{name: "restart empty", args: []string{"--restart", "", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "RestartPolicy", r.HostConfig.RestartPolicy, container.RestartPolicy{})
		}},
		{name: "restart no policy before colon", args: []string{"--restart", ":3", "img"}, err: "invalid restart policy format: no policy provided before colon"},
		{name: "restart bad count", args: []string{"--restart", "on-failure:x", "img"}, err: "invalid restart policy format: maximum retry count must be an integer"},
		{name: "restart and rm", args: []string{"--restart", "always", "--rm", "img"}, err: "conflicting options: cannot specify both --restart and --rm"},
		{name: "health flags", args: []string{"--health-cmd", "curl -f localhost", "--health-interval", "5s", "--health-timeout", "2s", "--health-start-period", "10s", "--health-start-interval", "1s", "--health-retries", "3", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Healthcheck", r.Config.Healthcheck, &container.HealthConfig{
				Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: 5 * time.Second, Timeout: 2 * time.Second,
				StartPeriod: 10 * time.Second, StartInterval: time.Second, Retries: 3,
			})
		}},
		{name: "health interval only", args: []string{"--health-interval", "30s", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Healthcheck", r.Config.Healthcheck, &container.HealthConfig{Interval: 30 * time.Second})
		}},
		{name: "no healthcheck", args: []string{"--no-healthcheck", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Healthcheck", r.Config.Healthcheck, &container.HealthConfig{Test: []string{"NONE"}})
		}},
		{name: "no healthcheck with health flags", args: []string{"--no-healthcheck", "--health-cmd", "true", "img"}, err: "--no-healthcheck conflicts with --health-* options"},
		{name: "negative health interval", args: []string{"--health-interval", "-1s", "img"}, err: "--health-interval cannot be negative"},
		{name: "negative health retries", args: []string{"--health-retries", "-1", "img"}, err: "--health-retries cannot be negative"},
		{name: "health interval not a duration", args: []string{"--health-interval", "soon", "img"}, err: `invalid argument "soon" for "--health-interval" flag: time: invalid duration "soon"`},
		{name: "stop signal and timeout", args: []string{"--stop-signal", "SIGKILL", "--stop-timeout", "5", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "StopSignal", r.Config.StopSignal, "SIGKILL")
			eq(t, "StopTimeout", r.Config.StopTimeout, ptr(5))
		}},
		{name: "stop timeout zero is sent", args: []string{"--stop-timeout", "0", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "StopTimeout", r.Config.StopTimeout, ptr(0))
		}},

		// Filesystems.
		{name: "tmpfs", args: []string{"--tmpfs", "/run", "--tmpfs", "/tmp:rw,size=64m", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Tmpfs", r.HostConfig.Tmpfs, map[string]string{"/run": "", "/tmp": "rw,size=64m"})
		}},
		{name: "mount bind", args: []string{"--mount", "type=bind,src=/src,dst=/dst,readonly,bind-propagation=rshared", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Mounts", r.HostConfig.Mounts, []mount.Mount{{Type: mount.TypeBind, Source: "/src", Target: "/dst", ReadOnly: true, BindOptions: &mount.BindOptions{Propagation: mount.PropagationRShared}}})
		}},
		{name: "mount volume", args: []string{"--mount", "source=vol,target=/data,volume-nocopy,volume-label=a=b,volume-driver=local,volume-opt=o=1,volume-subpath=sub", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Mounts", r.HostConfig.Mounts, []mount.Mount{{Type: mount.TypeVolume, Source: "vol", Target: "/data", VolumeOptions: &mount.VolumeOptions{
				NoCopy: true, Labels: map[string]string{"a": "b"}, Subpath: "sub", DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"o": "1"}},
			}}})
		}},
		{name: "mount tmpfs", args: []string{"--mount", "type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Mounts", r.HostConfig.Mounts, []mount.Mount{{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: os.FileMode(0o1770)}}})
		}},
		{name: "mount csv quoting and relative source", args: []string{"--mount", `type=bind,"src=./a,b",dst=/c,ro=false`, "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Mounts", r.HostConfig.Mounts, []mount.Mount{{Type: mount.TypeBind, Source: filepath.Join(cwd, "a,b"), Target: "/c"}})
		}},
		{name: "mount recursive readonly", args: []string{"--mount", "type=bind,src=/a,dst=/b,ro,bind-recursive=readonly,bind-propagation=rprivate", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "BindOptions", r.HostConfig.Mounts[0].BindOptions, &mount.BindOptions{Propagation: mount.PropagationRPrivate, ReadOnlyForceRecursive: true})
		}},
		{name: "mount mixes options", args: []string{"--mount", "type=tmpfs,dst=/t,volume-nocopy", "img"}, err: `invalid argument "type=tmpfs,dst=/t,volume-nocopy" for "--mount" flag: cannot mix 'volume-*' options with mount type 'tmpfs'`},
		{name: "mount without target", args: []string{"--mount", "src=x", "img"}, err: `invalid argument "src=x" for "--mount" flag: target is required`},
		{name: "mount unknown key", args: []string{"--mount", "type=bind,dst=/x,foo=bar", "img"}, err: `invalid argument "type=bind,dst=/x,foo=bar" for "--mount" flag: unexpected key 'foo' in 'foo=bar'`},
		{name: "mount bare field", args: []string{"--mount", "type=bind,dst=/x,bogus", "img"}, err: `invalid argument "type=bind,dst=/x,bogus" for "--mount" flag: invalid field 'bogus' must be a key=value pair`},
		{name: "mount bad tmpfs mode", args: []string{"--mount", "type=tmpfs,dst=/x,tmpfs-mode=9", "img"}, err: `invalid argument "type=tmpfs,dst=/x,tmpfs-mode=9" for "--mount" flag: invalid value for tmpfs-mode: 9`},
		{name: "mount bad readonly", args: []string{"--mount", "dst=/x,ro=maybe", "img"}, err: `invalid argument "dst=/x,ro=maybe" for "--mount" flag: invalid value for ro: maybe`},
		{name: "mount writable recursion needs ro", args: []string{"--mount", "type=bind,src=/a,dst=/b,bind-recursive=writable", "img"}, err: `invalid argument "type=bind,src=/a,dst=/b,bind-recursive=writable" for "--mount" flag: option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction`},
		{name: "volumes binds and anonymous", args: []string{"-v", "/src:/dst:ro", "-v", "vol:/data", "-v", "/anon", "-v", "/src:/dst:ro", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Binds", r.HostConfig.Binds, []string{"/src:/dst:ro", "vol:/data"})
			eq(t, "Volumes", r.Config.Volumes, map[string]struct{}{"/anon": {}})
		}},
		{name: "volume relative host path", args: []string{"-v", "./rel:/dst", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Binds", r.HostConfig.Binds, []string{filepath.Join(cwd, "rel") + ":/dst"})
		}},
		{name: "volume empty spec", args: []string{"-v", "", "img"}, err: "invalid empty volume spec"},
		{name: "volume empty source", args: []string{"-v", ":/volume", "img"}, err: "invalid spec: :/volume: empty section between colons"},
		{name: "volume too many colons", args: []string{"-v", "/a:/b:ro:x", "img"}, err: "invalid spec: /a:/b:ro:x: too many colons"},
		{name: "volumes-from and volume driver", args: []string{"--volumes-from", "other:ro", "--volume-driver", "local", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "VolumesFrom", r.HostConfig.VolumesFrom, []string{"other:ro"})
			eq(t, "VolumeDriver", r.HostConfig.VolumeDriver, "local")
		}},
		{name: "read only root", args: []string{"--read-only", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "ReadonlyRootfs", r.HostConfig.ReadonlyRootfs, true)
		}},

		// Devices and kernel settings.
		{name: "devices", args: []string{"--device", "/dev/fuse", "--device", "/dev/sda:/dev/xvda:r", "--device", "/dev/kvm:rw", "--device", "vendor.com/gpu=0", "--device-cgroup-rule", "c 1:3 mr", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Devices", r.HostConfig.Devices, []container.DeviceMapping{
				{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
				{PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "r"},
				{PathOnHost: "/dev/kvm", PathInContainer: "/dev/kvm", CgroupPermissions: "rw"},
			})
			eq(t, "DeviceRequests", r.HostConfig.DeviceRequests, []container.DeviceRequest{{Driver: "cdi", DeviceIDs: []string{"vendor.com/gpu=0"}}})
			eq(t, "DeviceCgroupRules", r.HostConfig.DeviceCgroupRules, []string{"c 1:3 mr"})
		}},
		{name: "device relative path", args: []string{"--device", "/dev/sda:rel", "img"}, err: "rel is not an absolute path"},
		{name: "device bad mode", args: []string{"--device", "/dev/sda:/dev/sdb:rx", "img"}, err: "bad mode specified: rx"},
		{name: "device cgroup rule bad", args: []string{"--device-cgroup-rule", "x", "img"}, err: `invalid argument "x" for "--device-cgroup-rule" flag: invalid device cgroup format 'x'`},
		{name: "sysctls", args: []string{"--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Sysctls", r.HostConfig.Sysctls, map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"})
		}},
		{name: "sysctl not namespaced", args: []string{"--sysctl", "kernel.foo=1", "img"}, err: `invalid argument "kernel.foo=1" for "--sysctl" flag: sysctl 'kernel.foo=1' is not allowed`},

		// Runtime, logging, storage, annotations, platform.
		{name: "runtime logging storage annotations", args: []string{"--init", "--runtime", "runc", "--isolation", "default", "--log-driver", "json-file", "--log-opt", "max-size=10m", "--storage-opt", "size=10G", "--annotation", "a=b", "--cidfile", "/tmp/cid", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			h := r.HostConfig
			eq(t, "Init", h.Init, ptr(true))
			eq(t, "Runtime", h.Runtime, "runc")
			eq(t, "Isolation", h.Isolation, container.Isolation("default"))
			eq(t, "LogConfig", h.LogConfig, container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}})
			eq(t, "StorageOpt", h.StorageOpt, map[string]string{"size": "10G"})
			eq(t, "Annotations", h.Annotations, map[string]string{"a": "b"})
			eq(t, "ContainerIDFile", h.ContainerIDFile, "/tmp/cid")
		}},
		{name: "init false is sent", args: []string{"--init=false", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Init", r.HostConfig.Init, ptr(false))
		}},
		{name: "log opts for none", args: []string{"--log-driver", "none", "--log-opt", "a=b", "img"}, err: "invalid logging opts for driver none"},
		{name: "storage opt without value", args: []string{"--storage-opt", "size", "img"}, err: "invalid storage option"},
		{name: "platform", args: []string{"--platform", "linux/arm64/v8", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Platform", r.Platform, &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
		}},
		{name: "platform arm variant", args: []string{"--platform", "linux/arm/v7", "img"}, want: func(t *testing.T, r *spec.CreateRequest) {
			eq(t, "Platform", r.Platform, &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"})
		}},
		{name: "platform bad", args: []string{"--platform", "linux/amd64/v2/extra", "img"}, err: `error parsing specified platform: "linux/amd64/v2/extra": cannot parse platform specifier: invalid argument`},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(t, c.args...)
			if c.err != "" {
				if err == nil {
					t.Fatalf("no error, want %q", c.err)
				}
				if err.Error() != c.err {
					t.Fatalf("error:\n got  %q\n want %q", err, c.err)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("error class = %v, want invalid argument", errdefs.ClassOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			c.want(t, got)
		})
	}
	if n := len(cases); n < 60 {
		t.Fatalf("only %d cases", n)
	}
}

// baseline2 is the baseline for another image.
func baseline2(image string) *spec.CreateRequest {
	b := baseline()
	b.Config.Image = image
	return b
}

// TestPlatformFromEnvironment checks that DOCKER_DEFAULT_PLATFORM is the --platform default.
func TestPlatformFromEnvironment(t *testing.T) {
	t.Setenv("DOCKER_DEFAULT_PLATFORM", "linux/ppc64le")
	got, err := parse(t, "img")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Platform", got.Platform, &ocispec.Platform{OS: "linux", Architecture: "ppc64le"})
}

// TestRequestDoesNotShareState checks that two requests built from one Options do not share
// slices or maps, so a caller may change one.
func TestRequestDoesNotShareState(t *testing.T) {
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	o := AddFlags(fs)
	if err := fs.Parse([]string{"--cap-add", "A", "--sysctl", "net.x=1", "-e", "A=1", "img"}); err != nil {
		t.Fatal(err)
	}
	a, err := o.Request(fs, "img", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.HostConfig.CapAdd[0] = "changed"
	a.HostConfig.Sysctls["net.x"] = "changed"
	a.Config.Env[0] = "changed"
	b, err := o.Request(fs, "img", nil)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "CapAdd", b.HostConfig.CapAdd, []string{"A"})
	eq(t, "Sysctls", b.HostConfig.Sysctls, map[string]string{"net.x": "1"})
	eq(t, "Env", b.Config.Env, []string{"A=1"})
}

// TestFlagDefinitions checks names, shorthands, defaults and hidden aliases against docker's.
func TestFlagDefinitions(t *testing.T) {
	t.Setenv("DOCKER_DEFAULT_PLATFORM", "")
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	AddFlags(fs)
	for _, c := range []struct{ name, short, def, typ string }{
		{"env", "e", "", "list"},
		{"label", "l", "", "list"},
		{"hostname", "h", "", "string"},
		{"memory", "m", "0", "bytes"},
		{"memory-swap", "", "0", "bytes"},
		{"memory-swappiness", "", "-1", "int64"},
		{"cpus", "", "", "decimal"},
		{"cpu-shares", "c", "0", "int64"},
		{"publish", "p", "", "list"},
		{"publish-all", "P", "false", "bool"},
		{"restart", "", "no", "string"},
		{"ulimit", "", "[]", "ulimit"},
		{"sysctl", "", "map[]", "map"},
		{"mount", "", "", "mount"},
		{"network", "", "", "network"},
		{"interactive", "i", "false", "bool"},
		{"tty", "t", "false", "bool"},
		{"workdir", "w", "", "string"},
		{"user", "u", "", "string"},
		{"volume", "v", "", "list"},
		{"attach", "a", "", "list"},
		{"health-interval", "", "0s", "duration"},
		{"blkio-weight", "", "0", "uint16"},
		{"help", "", "false", "bool"},
	} {
		f := fs.Lookup(c.name)
		if f == nil {
			t.Errorf("--%s not registered", c.name)
			continue
		}
		eq(t, "--"+c.name, []string{f.Shorthand, f.DefValue, f.Value.Type()}, []string{c.short, c.def, c.typ})
	}
	for _, hidden := range []string{"net", "net-alias", "dns-opt"} {
		if f := fs.Lookup(hidden); f == nil || !f.Hidden {
			t.Errorf("--%s should be registered and hidden", hidden)
		}
	}
	if f := fs.Lookup("kernel-memory"); f == nil || f.Deprecated == "" {
		t.Errorf("--kernel-memory should be registered and deprecated")
	}
}
