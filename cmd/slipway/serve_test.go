package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

const dockerCLI = "/usr/local/bin/docker"

func needServeRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: slipway serve creates overlayfs snapshots, which needs root (CI runs it as root)")
	}
}

// server is a `slipway serve` process started by a test.
type server struct {
	cmd     *exec.Cmd
	sock    string
	metrics string
	root    string
	stderr  *bytes.Buffer
	done    chan error
}

// varTemp makes a directory under /var/tmp, removed at the end of the test.
func varTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "slipway-serve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startServer runs slipway serve on a fresh root and socket and waits until it answers.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServerAt(t, filepath.Join(varTemp(t), "api.sock"), extra...)
}

// stop sends SIGTERM and checks a clean exit that removes the socket.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Errorf("slipway serve exit after SIGTERM: %v\n%s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("slipway serve did not stop on SIGTERM\n%s", s.stderr)
	}
	if _, err := os.Lstat(s.sock); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind after shutdown: %v", s.sock, err)
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", s.stderr)
	}
}

// docker runs the docker CLI against s, with a timeout so that a hang fails the test.
func (s *server) docker(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, append([]string{"-H", "unix://" + s.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(filepath.Dir(s.sock), "docker-config"), "DOCKER_HOST=", "DOCKER_CONTEXT=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("docker %s: timed out (hang)\nstderr: %s", strings.Join(args, " "), e.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// ok runs docker and fails the test unless it exits 0; it returns stdout.
func (s *server) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := s.docker(t, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs docker and checks the exit status and that stderr matches re.
func (s *server) fails(t *testing.T, wantCode int, re string, args ...string) string {
	t.Helper()
	out, errOut, code := s.docker(t, args...)
	if code != wantCode || !regexp.MustCompile(re).MatchString(errOut) {
		t.Errorf("docker %s: exit %d, stderr %q; want exit %d and stderr matching %q (stdout %q)", strings.Join(args, " "), code, errOut, wantCode, re, out)
	}
	return errOut
}

func match(t *testing.T, what, got, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(got) {
		t.Errorf("%s: %q does not match %q", what, got, re)
	}
}

// dockerServer starts slipway serve for a test that drives it with the real docker CLI,
// loads the test image through `docker load` and returns the server and the image tarball.
func dockerServer(t *testing.T) (*server, string) {
	t.Helper()
	needServeRoot(t)
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("skipped: the docker CLI is not at %s (the machine image ships it): %v", dockerCLI, err)
	}
	s := startServer(t)
	tar := filepath.Join(filepath.Dir(s.sock), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}
	s.ok(t, "load", "-i", tar)
	return s, tar
}

// TestServeDockerCLI drives slipway serve with the real docker CLI.
func TestServeDockerCLI(t *testing.T) {
	needServeRoot(t)
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("skipped: the docker CLI is not at %s (the machine image ships it): %v", dockerCLI, err)
	}
	s := startServer(t)
	start := time.Now()

	fi, err := os.Stat(s.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}

	out := s.ok(t, "version")
	match(t, "version", out, `(?m)^Server: Slipway `)
	match(t, "version", out, `(?m)^  API version:\s+1\.50 \(minimum version 1\.24\)$`)
	match(t, "version", out, `(?m)^ API version:\s+1\.50$`) // the client's, not downgraded
	out = s.ok(t, "info")
	match(t, "info", out, `(?m)^ Docker Root Dir: `+regexp.QuoteMeta(s.root)+`$`)
	match(t, "info", out, `(?m)^ OSType: linux$`)
	match(t, "info", out, `(?m)^ Containers: 0$`)

	tar := filepath.Join(filepath.Dir(s.sock), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}
	out = s.ok(t, "load", "-i", tar)
	match(t, "load", out, `^Loaded image: example\.com/app:1\n$`)
	out = s.ok(t, "images")
	match(t, "images", out, `(?m)^example\.com/app\s+1\s+[0-9a-f]{12}\s`)
	out = s.ok(t, "image", "inspect", "--format", "{{.Os}} {{index .RepoTags 0}} {{.Config.WorkingDir}}", testImage)
	match(t, "image inspect", out, `^linux example\.com/app:1 /srv\n$`)

	out = s.ok(t, "create", "--name", "web", "-e", "FOO=bar", "-l", "tier=front", "-p", "8080:80",
		"--network", "slipway", "--ip", "172.30.0.20", testImage, "--debug")
	match(t, "create", out, `^[0-9a-f]{64}\n$`)
	webID := strings.TrimSpace(out)
	out = s.ok(t, "create", testImage)
	match(t, "create", out, `^[0-9a-f]{64}\n$`)
	otherID := strings.TrimSpace(out)

	out = s.ok(t, "ps", "-a")
	match(t, "ps -a", out, `(?m)^`+webID[:12]+`\s+example\.com/app:1\s+"/bin/app --debug"\s+.*\sCreated\s+web$`)
	match(t, "ps -a", out, `(?m)^`+otherID[:12]+`\s+example\.com/app:1\s+"/bin/app --serve"\s+.*\sCreated\s+[a-z]+_[a-z_]+[0-9]*$`)
	out = s.ok(t, "ps")
	match(t, "ps (created containers are not running)", out, `^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\n$`)
	for filter, want := range map[string]string{
		"label=tier=front":            "web\n",
		"name=^web$":                  "web\n",
		"id=" + webID[:10]:            "web\n",
		"status=created":              "2",
		"ancestor=" + testImage:       "2",
		"ancestor=example.com/nope:1": "0",
		"status=running":              "0",
	} {
		out := s.ok(t, "ps", "-a", "--filter", filter, "--format", "{{.Names}}")
		if n := strings.Count(out, "\n"); len(want) == 1 && fmt.Sprint(n) != want || len(want) > 1 && out != want {
			t.Errorf("ps -a --filter %s: %q, want %s", filter, out, want)
		}
	}
	out = s.ok(t, "ps", "-a", "-n", "1", "-q")
	match(t, "ps -n 1 (newest first)", out, `^`+otherID[:12]+`\n$`)
	otherName := strings.TrimSpace(s.ok(t, "inspect", "--format", "{{.Name}}", otherID))[1:]
	for _, tc := range [][2]string{
		{"before=" + otherID, "web\n"},
		{"before=" + otherName, "web\n"},
		{"since=web", otherName + "\n"},
		{"since=" + webID, otherName + "\n"},
		{"before=web", ""},
	} {
		if out := s.ok(t, "ps", "-a", "--filter", tc[0], "--format", "{{.Names}}"); out != tc[1] {
			t.Errorf("ps -a --filter %s: %q, want %q", tc[0], out, tc[1])
		}
	}
	s.fails(t, 1, `^Error response from daemon: No such container: nosuch\n$`, "ps", "-a", "--filter", "before=nosuch")
	s.fails(t, 1, `^Error response from daemon: invalid filter 'bogus'\n$`, "ps", "-a", "--filter", "bogus=1")
	if out := s.ok(t, "ps", "-a", "--filter", "exited=0", "--filter", "is-task=false", "-q"); out != "" {
		t.Errorf("ps -a --filter exited=0: %q, want none (a created container never exited)", out)
	}

	// Sizes: the image's content is 42 bytes; a fresh read-write layer holds nothing.
	out = s.ok(t, "image", "inspect", "--format", "{{.Size}}", testImage)
	match(t, "image size", out, `^42\n$`)
	out = s.ok(t, "ps", "-a", "-s")
	match(t, "ps -a -s", out, `(?m)^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\s+SIZE$`)
	match(t, "ps -a -s", out, `(?m)^`+webID[:12]+`\s.*\sweb\s+0B \(virtual 42B\)$`)
	out = s.ok(t, "inspect", "-s", "--format", "{{.SizeRw}} {{.SizeRootFs}}", "web")
	match(t, "inspect -s", out, `^0 42\n$`)
	out = s.ok(t, "inspect", "--format", "{{.SizeRw}} {{.SizeRootFs}}", "web")
	match(t, "inspect without -s", out, `^<nil> <nil>\n$`)

	out = s.ok(t, "inspect", "--format",
		`{{.Name}}|{{.State.Status}}|{{json .Config.Env}}|{{index .Config.Labels "tier"}}|{{(index (index .HostConfig.PortBindings "80/tcp") 0).HostPort}}|{{.NetworkSettings.Networks.slipway.IPAddress}}|{{.Path}}`, "web")
	match(t, "inspect", out, `^/web\|created\|\[[^]]*"FOO=bar"[^]]*\]\|front\|8080\|172\.30\.0\.20\|/bin/app\n$`)
	out = s.ok(t, "inspect", "web")
	var insp []map[string]any
	if err := json.Unmarshal([]byte(out), &insp); err != nil || len(insp) != 1 || insp[0]["Id"] != webID {
		t.Errorf("inspect web: %v, %q", err, out)
	}

	// Error paths.
	s.fails(t, 1, `^Error response from daemon: Conflict\. The container name "/web" is already in use by container "`+webID+`"\. You have to remove \(or rename\) that container to be able to reuse that name\.\n$`,
		"create", "--name", "web", testImage)
	s.fails(t, 1, `(?s)^Unable to find image 'example\.com/missing:2' locally\nError response from daemon: slipway does not pull images: load example\.com/missing:2 with docker load\n$`,
		"create", "example.com/missing:2")
	s.fails(t, 1, `^Error response from daemon: No such image: example\.com/missing:2\n$`, "create", "--pull", "never", "example.com/missing:2")
	s.fails(t, 125, `unknown flag: --bogus`, "create", "--bogus", testImage)
	s.fails(t, 125, `invalid empty volume spec`, "create", "-v", "", testImage)
	s.fails(t, 125, `invalid argument "=foo" for "-e, --env" flag: invalid environment variable: =foo`, "create", "-e", "=foo", testImage)
	s.fails(t, 1, `^Error response from daemon: invalid CPU shares \(-1\): value must be a positive integer\n$`, "create", "--cpu-shares", "-1", testImage)
	s.fails(t, 1, `^Error response from daemon: user specified IP address is supported on user defined networks only\n$`, "create", "--ip", "172.17.0.9", testImage)
	s.fails(t, 1, `Error response from daemon: Invalid container name \(-x\), only \[a-zA-Z0-9\]\[a-zA-Z0-9_\.-\] are allowed`, "create", "--name", "-x", testImage)
	s.fails(t, 1, `^Error: No such object: nosuch\n$`, "inspect", "nosuch")
	s.fails(t, 1, `^Error response from daemon: conflict: unable to remove repository reference "example\.com/app:1" \(must force\) - container [0-9a-f]{12} is using its referenced image [0-9a-f]{12}\n$`, "image", "rm", testImage)
	s.fails(t, 1, `Error response from daemon: No such image: nosuch:latest`, "image", "inspect", "nosuch")

	out = s.ok(t, "rm", "web")
	match(t, "rm", out, `^web\n$`)
	s.fails(t, 1, `^Error response from daemon: No such container: web\n$`, "rm", "web")
	out, errOut, code := s.docker(t, "rm", "-f", "web", otherID[:12])
	if code != 0 || out != otherID[:12]+"\n" || !strings.Contains(errOut, "No such container: web") {
		t.Errorf("rm -f web %s: exit %d, stdout %q, stderr %q; want 0, the ID, and the missing one reported", otherID[:12], code, out, errOut)
	}
	out = s.ok(t, "ps", "-a", "-q")
	if out != "" {
		t.Errorf("ps -a after rm: %q", out)
	}

	// docker events --until sends whole seconds; wait for the second of the last event to pass.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	since := fmt.Sprint(start.Add(-time.Second).Unix())
	out = s.ok(t, "events", "--since", since, "--until", "0s", "--filter", "type=container")
	match(t, "events", out, `(?m)^\S+ container create `+webID+` \(.*name=web.*tier=front.*\)$`)
	match(t, "events", out, `(?m)^\S+ container destroy `+webID+` \(`)
	match(t, "events", out, `(?m)^\S+ container destroy `+otherID+` \(`)
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("events: %d lines, want 4 (2 creates, 2 destroys):\n%s", n, out)
	}
	out = s.ok(t, "events", "--since", since, "--until", "0s", "--filter", "event=destroy", "--filter", "container=web", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	if out != "destroy web\n" {
		t.Errorf("events --filter event=destroy --filter container=web: %q", out)
	}

	out = s.ok(t, "image", "rm", testImage)
	match(t, "image rm", out, `(?s)^Untagged: example\.com/app:1\nDeleted: sha256:[0-9a-f]{64}\n`)
	out = s.ok(t, "images", "-q")
	if out != "" {
		t.Errorf("images after image rm: %q", out)
	}

	// The metrics saw the runs.
	m := scrape(t, s.metrics)
	match(t, "metrics", m, `(?m)^slipway_runs_total\{op="create",outcome="ok"\} 2$`)
	match(t, "metrics", m, `(?m)^slipway_runs_total\{op="create",outcome="conflict"\} 1$`)
	match(t, "metrics", m, `(?m)^slipway_runs_total\{op="remove",outcome="ok"\} 2$`)
	match(t, "metrics", m, `(?m)^slipway_stage_duration_seconds_count\{impl="[^"]+",outcome="ok",stage="layer"\} 2$`)
	match(t, "metrics", m, `(?m)^slipway_runs_undone_total\{op="create"\} [1-9]`)
	match(t, "metrics", m, `(?m)^slipway_api_requests_total\{code="201",method="post"\} 2$`)
	match(t, "metrics", m, `(?m)^slipway_plugin_restarts_total 0$`) // the default pipeline runs no plugin

	s.stop(t)
}

// scrape reads the Prometheus metrics from the unix socket at path.
func scrape(t *testing.T, path string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	res, err := hc.Get("http://metrics/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mobyClient returns the moby Go client for s, closed when the test ends.
func mobyClient(t *testing.T, s *server) *client.Client {
	t.Helper()
	c, err := client.New(client.WithHost("unix://" + s.sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeMobyClient runs the same scenario through the moby Go client.
func TestServeMobyClient(t *testing.T) {
	needServeRoot(t)
	s := startServer(t)
	ctx := context.Background()
	c := mobyClient(t, s)

	ping, err := c.Ping(ctx, client.PingOptions{})
	if err != nil || ping.APIVersion != "1.50" || ping.OSType != "linux" {
		t.Fatalf("ping: %+v, %v", ping, err)
	}
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil || v.APIVersion != "1.50" || v.MinAPIVersion != "1.24" {
		t.Fatalf("version: %+v, %v", v, err)
	}
	if c.ClientVersion() != "1.50" {
		t.Errorf("negotiated version %s, want 1.50", c.ClientVersion())
	}
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil || info.Info.OSType != "linux" || info.Info.DockerRootDir != s.root {
		t.Fatalf("info: %+v, %v", info.Info, err)
	}

	var buf bytes.Buffer
	tar := filepath.Join(filepath.Dir(s.sock), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr, err := c.ImageLoad(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&buf, lr)
	lr.Close()
	// The moby client asks for progress (quiet=0): a "Loading layer" message per layer, then
	// the result, each line ended as moby's streamformatter ends it.
	got := buf.String()
	if !strings.HasSuffix(got, "\r\n"+`{"stream":"Loaded image: example.com/app:1\n"}`+"\r\n") || strings.Count(got, `"status":"Loading layer"`) != 2 {
		t.Errorf("image load stream %q", got)
	}
	imgs, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil || len(imgs.Items) != 1 || imgs.Items[0].RepoTags[0] != testImage {
		t.Fatalf("image list: %+v, %v", imgs, err)
	}

	port, _ := network.ParsePort("80/tcp")
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       "web",
		Config:     &container.Config{Image: testImage, Env: []string{"FOO=bar"}, Labels: map[string]string{"tier": "front"}, Cmd: []string{"--debug"}, ExposedPorts: network.PortSet{port: {}}},
		HostConfig: &container.HostConfig{NetworkMode: "slipway", PortBindings: network.PortMap{port: {{HostPort: "8080"}}}},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"slipway": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: mustAddr(t, "172.30.0.21")}},
		}},
	})
	if err != nil || len(cr.ID) != 64 || cr.Warnings == nil {
		t.Fatalf("create: %+v, %v", cr, err)
	}
	_, err = c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "web", Config: &container.Config{Image: testImage}})
	if !cerrdefs.IsConflict(err) || !strings.Contains(err.Error(), `The container name "/web" is already in use`) {
		t.Errorf("second create of web: %v, want a conflict", err)
	}
	_, err = c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: "test456:v1"}})
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "No such image: test456:v1") {
		t.Errorf("create with a missing image: %v, want not found", err)
	}
	_, err = c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: testImage, Env: []string{"=foo"}}})
	if !cerrdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "invalid environment variable: =foo") {
		t.Errorf("create with an invalid env: %v, want invalid argument", err)
	}

	list, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", "tier=front")})
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != cr.ID || list.Items[0].Names[0] != "/web" || list.Items[0].State != container.StateCreated {
		t.Fatalf("list: %+v, %v", list.Items, err)
	}
	ins, err := c.ContainerInspect(ctx, "web", client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ins.Container.ID != cr.ID || ins.Container.State.Status != container.StateCreated ||
		ins.Container.NetworkSettings.Networks["slipway"].IPAddress.String() != "172.30.0.21" {
		t.Errorf("inspect: %+v", ins.Container)
	}

	evctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev := c.Events(evctx, client.EventsListOptions{Filters: client.Filters{}.Add("event", "destroy")})
	if _, err := c.ContainerRemove(ctx, "web", client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ev.Messages:
		if m.Action != "destroy" || m.Actor.ID != cr.ID || m.Actor.Attributes["name"] != "web" {
			t.Errorf("event %+v", m)
		}
	case err := <-ev.Err:
		t.Fatalf("events: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no destroy event within 10s")
	}
	if _, err := c.ContainerRemove(ctx, "web", client.ContainerRemoveOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("second remove: %v, want not found", err)
	}
	del, err := c.ImageRemove(ctx, testImage, client.ImageRemoveOptions{})
	if err != nil || len(del.Items) == 0 || del.Items[0].Untagged != testImage {
		t.Errorf("image remove: %+v, %v", del, err)
	}
	if _, err := c.ImageInspect(ctx, testImage); !cerrdefs.IsNotFound(err) {
		t.Errorf("image inspect after remove: %v, want not found", err)
	}
	// The event stream ends with the server: shutdown does not wait for it.
	s.stop(t)
}

// TestServeSocket checks the socket rules: a live server's socket is refused, a stale one
// replaced, and the group applied.
func TestServeSocket(t *testing.T) {
	needServeRoot(t)
	s := startServer(t)
	dir := varTemp(t)
	cmd := exec.Command(slipwayBin(t), "--root", filepath.Join(dir, "root"), "serve", "--host", "unix://"+s.sock)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "socket "+s.sock+" is in use by another server") {
		t.Errorf("second server on a live socket: %v, %q", err, out)
	}
	if c, err := net.Dial("unix", s.sock); err != nil {
		t.Errorf("the first server's socket no longer answers: %v", err)
	} else {
		c.Close()
	}
	s.stop(t)

	// A stale socket (its server was killed) is removed and replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	s2 := startServerAt(t, stale, "--group", "1")
	fi, err := os.Stat(stale)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 1 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket gid %d mode %v, want gid 1 and 0660", st.Gid, fi.Mode().Perm())
	}
	s2.stop(t)

	// Bad flags are usage errors.
	for _, argv := range [][]string{{"serve", "--host", "tcp://127.0.0.1:2375"}, {"serve", "--group", "no-such-group-x"}, {"serve", "extra"}} {
		out, err := exec.Command(slipwayBin(t), append([]string{"--root", filepath.Join(dir, "root")}, argv...)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 {
			t.Errorf("slipway %s: %v %q, want exit 125", strings.Join(argv, " "), err, out)
		}
	}
}

// startServerAt runs slipway serve on sock, with a fresh root and metrics on a unix socket
// beside it, and waits until it answers.
func startServerAt(t *testing.T, sock string, extra ...string) *server {
	t.Helper()
	dir := filepath.Dir(sock)
	s := &server{sock: sock, metrics: filepath.Join(dir, "metrics.sock"), root: filepath.Join(varTemp(t), "root"),
		stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	argv := append([]string{"--root", s.root, "--log-level", "debug", "serve", "--host", "unix://" + sock, "--metrics-addr", "unix://" + s.metrics}, extra...)
	s.cmd = exec.Command(slipwayBin(t), argv...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("server log:\n%s", s.stderr)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("slipway serve exited: %v\n%s", err, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slipway serve did not listen on %s\n%s", sock, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestServeDockerLoadProgress checks docker load's output on a terminal (progress per layer)
// and off one (the result only), and that docker events follows the image's load and removal.
func TestServeDockerLoadProgress(t *testing.T) {
	needServeRoot(t)
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("skipped: the docker CLI is not at %s (the machine image ships it): %v", dockerCLI, err)
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skipf("skipped: util-linux script, which gives docker load a terminal, is not installed: %v", err)
	}
	s := startServer(t)
	tar := filepath.Join(filepath.Dir(s.sock), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}

	// docker events follows image events from now on.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ev := exec.CommandContext(ctx, dockerCLI, "-H", "unix://"+s.sock, "events", "--filter", "type=image",
		"--format", `{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}} {{index .Actor.Attributes "org.example.app"}}`)
	ev.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(filepath.Dir(s.sock), "docker-config"), "DOCKER_HOST=", "DOCKER_CONTEXT=")
	evOut, err := ev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(evOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() { cancel(); ev.Wait() }()
	time.Sleep(500 * time.Millisecond) // the stream is open once docker events has connected

	// On a terminal the CLI asks for progress (quiet=0) and draws it.
	cmd := exec.CommandContext(ctx, script, "-q", "-e", "-c", dockerCLI+" -H unix://"+s.sock+" load -i "+tar, "/dev/null")
	cmd.Env = ev.Env
	tty, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker load on a terminal: %v\n%s", err, tty)
	}
	// The bar needs a terminal wider than 110 columns, which script's is not.
	layers := strings.Fields(s.ok(t, "image", "inspect", "--format", `{{range .RootFS.Layers}}{{slice . 7 19}} {{end}}`, testImage))
	if len(layers) != 2 {
		t.Fatalf("image layers %q, want 2", layers)
	}
	for _, l := range layers {
		match(t, "docker load on a terminal", string(tty), l+`: Loading layer\s+(\[=+>\]\s+)?\d+B/\d+B`)
	}
	match(t, "docker load on a terminal", string(tty), `Loaded image: example\.com/app:1\r?\n$`)
	// Off a terminal (and with -q) it asks for none; the layers are held anyway.
	match(t, "docker load", s.ok(t, "load", "-i", tar), `^Loaded image: example\.com/app:1\n$`)
	match(t, "docker load -q", s.ok(t, "load", "-q", "-i", tar), `^Loaded image: example\.com/app:1\n$`)
	id := strings.TrimSpace(s.ok(t, "image", "inspect", "--format", "{{.Id}}", testImage))
	out := s.ok(t, "image", "rm", testImage)
	match(t, "image rm", out, `^Untagged: example\.com/app:1\nDeleted: `+id+`\n$`)

	want := []string{
		"image load " + id + " " + id + " yes",
		"image load " + id + " " + id + " yes",
		"image load " + id + " " + id + " yes",
		"image untag " + id + " " + testImage + " yes",
		"image delete " + id + " " + id + " ",
	}
	for i, w := range want {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("docker events ended after %d events", i)
			}
			if l != w {
				t.Errorf("event %d: %q, want %q", i, l, w)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("docker events: event %d (%q) not seen within 20s", i, w)
		}
	}
	// The log has them too, and slipway's image commands emit the same.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	out = s.ok(t, "events", "--since", "1970-01-01T00:00:00", "--until", "0s", "--filter", "image="+testImage, "--format", "{{.Action}}")
	if out != "untag\n" {
		t.Errorf("events --filter image=%s: %q, want the untag", testImage, out)
	}
	s.stop(t)

	root := s.root
	slip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(slipwayBin(t), append([]string{"--root", root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	slip("image", "load", "-i", tar)
	slip("image", "rm", testImage)
	out = slip("events")
	for _, a := range []string{"load", "untag", "delete"} {
		if n := strings.Count(out, "image "+a+" "+id); n < 2 {
			t.Errorf("slipway events: %d image %s events of %s, want 2 (serve's and the CLI's):\n%s", n, a, id, out)
		}
	}
}
