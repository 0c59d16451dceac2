package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The inspect goldens in testdata/inspect are what moby (HEAD, answering API 1.50 as slipway
// serve does) returns from GET /containers/{id}/json for a container that was created and
// never started, derived field by field from moby's source; testdata/inspect/README.md says
// where each non-obvious value comes from. Values that must differ between two engines are
// placeholders: <ID>, <ID12>, <NAME>, <CREATED>, <ROOT> (the state root), <IMAGE_ID>,
// <MANIFEST_DIGEST>, <SIZE>, <TARGET_ID>, <STORAGE> and <ALLOC> (addresses), <BIND> (the
// test's bind source directory) and <ANON> (the generated name of an anonymous volume).
//
// Each case is created twice: through slipway serve with body, and with slipway create and
// args, the flags the docker CLI turns into that body. Both inspects must match the golden.
type inspectCase struct {
	golden string   // testdata/inspect/<golden>.json
	name   string   // ?name=, empty for a generated one
	body   string   // the create body, as a client sends it; <BIND> is replaced
	args   []string // slipway create's flags and arguments for the same request; <BIND> is replaced
	// cliDiffs are the differences, by JSON path, that the CLI's request legitimately
	// makes: what the docker CLI sends beyond the raw body. Each must occur, and is logged.
	cliDiffs map[string]string
}

// dockerCLIDefaults are what the docker CLI sends for any docker create beyond a bare
// body, seen by TestCLIRequestMatchesDockerCLI: it attaches stdout and stderr when -a is not
// given, and sends its list options as [] and the port bindings as {} when empty (moby
// stores and shows them as sent).
var dockerCLIDefaults = map[string]string{
	".Config.AttachStdout":             "docker create attaches stdout without -a",
	".Config.AttachStderr":             "docker create attaches stderr without -a",
	".HostConfig.Dns":                  "the docker CLI sends [] without --dns",
	".HostConfig.DnsOptions":           "the docker CLI sends [] without --dns-option",
	".HostConfig.DnsSearch":            "the docker CLI sends [] without --dns-search",
	".HostConfig.Devices":              "the docker CLI sends [] without --device",
	".HostConfig.Ulimits":              "the docker CLI sends [] without --ulimit",
	".HostConfig.BlkioWeightDevice":    "the docker CLI sends [] without --blkio-weight-device",
	".HostConfig.BlkioDeviceReadBps":   "the docker CLI sends [] without --device-read-bps",
	".HostConfig.BlkioDeviceWriteBps":  "the docker CLI sends [] without --device-write-bps",
	".HostConfig.BlkioDeviceReadIOps":  "the docker CLI sends [] without --device-read-iops",
	".HostConfig.BlkioDeviceWriteIOps": "the docker CLI sends [] without --device-write-iops",
}

// withoutPorts adds the port bindings to the docker CLI's defaults, for a case without -p.
func withoutPorts() map[string]string {
	m := maps.Clone(dockerCLIDefaults)
	m[".HostConfig.PortBindings"] = "the docker CLI sends {} without -p"
	return m
}

var inspectCases = []inspectCase{
	{golden: "plain", body: `{"Image":"example.com/app:1"}`, args: []string{"example.com/app:1"}, cliDiffs: withoutPorts()},
	{golden: "configured", name: "web", body: `{
		"Image": "example.com/app:1",
		"Hostname": "web1",
		"Env": ["FOO=bar", "APP_MODE=dev"],
		"Labels": {"tier": "front"},
		"Cmd": ["--debug"],
		"WorkingDir": "/data",
		"ExposedPorts": {"8080/tcp": {}},
		"HostConfig": {"NetworkMode": "slipway", "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "9090"}]}},
		"NetworkingConfig": {"EndpointsConfig": {"slipway": {"IPAMConfig": {"IPv4Address": "172.30.0.21"}}}}
	}`, args: []string{"--name", "web", "--hostname", "web1", "-e", "FOO=bar", "-e", "APP_MODE=dev", "-l", "tier=front",
		"-w", "/data", "--expose", "8080", "-p", "9090:8080", "--network", "slipway", "--ip", "172.30.0.21",
		"example.com/app:1", "--debug"}, cliDiffs: dockerCLIDefaults},
	{golden: "linked", name: "client", body: `{
		"Image": "example.com/app:1",
		"HostConfig": {"Links": ["target:db"], "Privileged": true, "SecurityOpt": ["no-new-privileges"]}
	}`, args: []string{"--name", "client", "--link", "target:db", "--privileged", "--security-opt", "no-new-privileges", "example.com/app:1"}, cliDiffs: withoutPorts()},
	// The docker CLI sends -v with a source as a bind, -v without one as Config.Volumes, and
	// --mount as HostConfig.Mounts (a tmpfs too: only --tmpfs fills HostConfig.Tmpfs).
	{golden: "mounts", name: "vols", body: `{
		"Image": "example.com/app:1",
		"WorkingDir": "/new/dir",
		"Volumes": {"/anon": {}},
		"HostConfig": {
			"Binds": ["named:/data"],
			"Mounts": [{"Type": "tmpfs", "Target": "/t"}, {"Type": "bind", "Source": "<BIND>", "Target": "/b", "ReadOnly": true}]
		}
	}`, args: []string{"--name", "vols", "-v", "named:/data", "-v", "/anon", "--mount", "type=tmpfs,dst=/t",
		"--mount", "type=bind,src=<BIND>,dst=/b,readonly", "-w", "/new/dir", "example.com/app:1"}, cliDiffs: withoutPorts()},
}

// knownInspectDiffs are accepted differences from moby, by JSON path, with why; each is
// logged and any other difference fails the test. None is left: keep it that way.
var knownInspectDiffs = map[string]string{}

// unixHTTP is an HTTP client for a unix socket.
func unixHTTP(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func call(t *testing.T, c *http.Client, method, path, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest(method, "http://slipway/v1.50"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return b
}

// TestServeInspectMatchesMoby creates containers through slipway serve and compares the
// raw inspect JSON with moby's, key by key: a missing or extra key, null against [] or {},
// a type or a value that differs fails the test.
func TestServeInspectMatchesMoby(t *testing.T) {
	needServeRoot(t)
	s := startServer(t)
	c := unixHTTP(s.sock)
	tar := filepath.Join(filepath.Dir(s.sock), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(tar)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, "POST", "/images/load", string(img), http.StatusOK)
	bind := bindSource(t)
	// The link target of the "linked" case.
	var target struct {
		ID string `json:"Id"`
	}
	json.Unmarshal(call(t, c, "POST", "/containers/create?name=target", `{"Image":"example.com/app:1"}`, http.StatusCreated), &target)

	for _, tc := range inspectCases {
		t.Run(tc.golden, func(t *testing.T) {
			var cr struct {
				ID       string `json:"Id"`
				Warnings []string
			}
			q := ""
			if tc.name != "" {
				q = "?name=" + tc.name
			}
			body := strings.ReplaceAll(tc.body, "<BIND>", bind)
			if err := json.Unmarshal(call(t, c, "POST", "/containers/create"+q, body, http.StatusCreated), &cr); err != nil {
				t.Fatal(err)
			}
			raw := call(t, c, "GET", "/containers/"+cr.ID+"/json", "", http.StatusOK)
			checkGolden(t, tc, normalise(t, raw, s.root, cr.ID, target.ID, bind, tc.name == ""), nil)
		})
	}
}

// TestCLIInspectMatchesMoby creates the same containers with slipway create's flags (the
// docker CLI's) and compares slipway inspect with the same goldens, allowing only each
// case's cliDiffs.
func TestCLIInspectMatchesMoby(t *testing.T) {
	needServeRoot(t)
	root := filepath.Join(varTemp(t), "root")
	slip := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(slipwayBin(t), append([]string{"--root", root}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	tar := filepath.Join(filepath.Dir(root), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}
	slip("image", "load", "-i", tar)
	targetID := strings.TrimSpace(string(slip("create", "--name", "target", "example.com/app:1")))
	bind := bindSource(t)

	for _, tc := range inspectCases {
		t.Run(tc.golden, func(t *testing.T) {
			args := []string{"create"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "<BIND>", bind))
			}
			id := strings.TrimSpace(string(slip(args...)))
			if len(id) != 64 {
				t.Fatalf("slipway create: %q, want an ID", id)
			}
			var list []json.RawMessage
			if err := json.Unmarshal(slip("inspect", id), &list); err != nil || len(list) != 1 {
				t.Fatalf("slipway inspect %s: %v, %d results", id, err, len(list))
			}
			checkGolden(t, tc, normalise(t, list[0], root, id, targetID, bind, tc.name == ""), tc.cliDiffs)
		})
	}
}

// TestCLIRequestMatchesDockerCLI checks that each case's args are the docker CLI's request
// for its body: the real docker CLI creates it through slipway serve, slipway create with
// the same arguments on a root of its own, and the two inspects must be the same.
func TestCLIRequestMatchesDockerCLI(t *testing.T) {
	s, tar := dockerServer(t)
	dockerTarget := strings.TrimSpace(s.ok(t, "create", "--name", "target", testImage))
	root := filepath.Join(varTemp(t), "root")
	slip := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(slipwayBin(t), append([]string{"--root", root}, args...)...).Output()
		if err != nil {
			t.Fatalf("slipway %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	slip("image", "load", "-i", tar)
	slipTarget := strings.TrimSpace(string(slip("create", "--name", "target", testImage)))
	bind := bindSource(t)
	for _, tc := range inspectCases {
		t.Run(tc.golden, func(t *testing.T) {
			args := []string{"create"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "<BIND>", bind))
			}
			first := func(b []byte) []byte {
				t.Helper()
				var l []json.RawMessage
				if err := json.Unmarshal(b, &l); err != nil || len(l) != 1 {
					t.Fatalf("inspect: %v, %s", err, b)
				}
				return l[0]
			}
			id := strings.TrimSpace(s.ok(t, args...))
			docker := normalise(t, first([]byte(s.ok(t, "inspect", id))), s.root, id, dockerTarget, bind, tc.name == "")
			id = strings.TrimSpace(string(slip(args...)))
			mine := normalise(t, first(slip("inspect", id)), root, id, slipTarget, bind, tc.name == "")
			// The docker CLI sends -e values in an order that changes from run to run when it
			// talks to a real server (seen on the wire: 3 of 10 creates swapped two -e), so
			// the environment is compared as a set here.
			sortEnv(docker)
			sortEnv(mine)
			var diffs []string
			compareJSON("", docker, mine, &diffs)
			if len(diffs) > 0 {
				t.Errorf("slipway create %s differs from docker create through slipway serve (\"moby\" is docker's):\n%s",
					strings.Join(args[1:], " "), strings.Join(diffs, "\n"))
			}
		})
	}
}

// bindSource makes the directory the "mounts" case binds.
func bindSource(t *testing.T) string {
	t.Helper()
	d := filepath.Join(varTemp(t), "bind-src")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkGolden compares got with the golden of tc: a difference that neither
// knownInspectDiffs nor allowed names fails the test.
func checkGolden(t *testing.T, tc inspectCase, got any, allowed map[string]string) {
	t.Helper()
	want := readGolden(t, filepath.Join("testdata", "inspect", tc.golden+".json"))
	var all, diffs []string
	compareJSON("", want, got, &all)
	seen := map[string]bool{}
	for _, d := range all {
		path := strings.SplitN(d, ":", 2)[0]
		if reason, ok := knownInspectDiffs[path]; ok {
			t.Logf("known difference, %s: %s", reason, d)
			continue
		}
		if reason, ok := allowed[path]; ok {
			seen[path] = true
			t.Logf("the CLI's request differs, %s: %s", reason, d)
			continue
		}
		diffs = append(diffs, d)
	}
	for path := range allowed {
		if !seen[path] {
			diffs = append(diffs, path+": listed as a difference of the CLI's request, but there is none (drop it)")
		}
	}
	if len(diffs) > 0 {
		pretty, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("inspect differs from moby's (%s):\n%s\n\nslipway, normalised:\n%s", tc.golden, strings.Join(diffs, "\n"), pretty)
	}
}

func readGolden(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, b)
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// normalise replaces what must differ between two engines with the goldens' placeholders.
func normalise(t *testing.T, raw []byte, root, id, targetID, bind string, generatedName bool) any {
	t.Helper()
	s := string(raw)
	s = strings.ReplaceAll(s, bind, "<BIND>")
	s = strings.ReplaceAll(s, root, "<ROOT>")
	s = strings.ReplaceAll(s, id, "<ID>")
	s = strings.ReplaceAll(s, targetID, "<TARGET_ID>")
	s = strings.ReplaceAll(s, id[:12], "<ID12>")
	v := decodeJSON(t, []byte(s)).(map[string]any)
	set := func(m map[string]any, key, to string) {
		if x, ok := m[key].(string); ok && x != "" {
			m[key] = to
		}
	}
	set(v, "Created", "<CREATED>")
	set(v, "Image", "<IMAGE_ID>")
	if generatedName {
		set(v, "Name", "<NAME>")
	}
	// Anonymous volumes have generated names; moby lists the mount points in map order, the
	// goldens by destination.
	if ms, ok := v["Mounts"].([]any); ok {
		for _, m := range ms {
			if m, ok := m.(map[string]any); ok {
				if n, _ := m["Name"].(string); anonName.MatchString(n) {
					m["Name"] = "<ANON>"
					m["Source"] = strings.ReplaceAll(m["Source"].(string), n, "<ANON>")
				}
			}
		}
		sort.SliceStable(ms, func(i, j int) bool {
			di, _ := ms[i].(map[string]any)["Destination"].(string)
			dj, _ := ms[j].(map[string]any)["Destination"].(string)
			return di < dj
		})
	}
	if d, ok := v["ImageManifestDescriptor"].(map[string]any); ok {
		set(d, "digest", "<MANIFEST_DIGEST>")
		if _, ok := d["size"]; ok {
			d["size"] = "<SIZE>"
		}
	}
	// The storage: moby's containerd snapshotter shows no Data, a graph driver its
	// directories; Slipway's layout is its own.
	if g, ok := v["GraphDriver"].(map[string]any); ok && g["Data"] != nil {
		g["Data"] = "<STORAGE>"
	}
	// Addresses: Slipway leases them at create, moby only when the container starts.
	alloc := func(m map[string]any) {
		for _, k := range []string{"IPAddress", "IPPrefixLen", "Gateway", "NetworkID", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPv6Gateway"} {
			if _, ok := m[k]; ok {
				m[k] = "<ALLOC>"
			}
		}
	}
	if ns, ok := v["NetworkSettings"].(map[string]any); ok {
		alloc(ns)
		if nets, ok := ns["Networks"].(map[string]any); ok {
			for _, ep := range nets {
				if ep, ok := ep.(map[string]any); ok {
					alloc(ep)
				}
			}
		}
	}
	return v
}

var anonName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// compareJSON appends a line to diffs for every difference between want and got.
func compareJSON(path string, want, got any, diffs *[]string) {
	if reflect.DeepEqual(want, got) {
		return
	}
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		keys := map[string]bool{}
		for k := range wm {
			keys[k] = true
		}
		for k := range gm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			wv, inW := wm[k]
			gv, inG := gm[k]
			switch {
			case !inG:
				*diffs = append(*diffs, fmt.Sprintf("%s.%s: missing (moby: %s)", path, k, show(wv)))
			case !inW:
				*diffs = append(*diffs, fmt.Sprintf("%s.%s: extra (slipway: %s)", path, k, show(gv)))
			default:
				compareJSON(path+"."+k, wv, gv, diffs)
			}
		}
		return
	}
	wa, wok := want.([]any)
	ga, gok := got.([]any)
	if wok && gok && len(wa) == len(ga) {
		for i := range wa {
			compareJSON(fmt.Sprintf("%s[%d]", path, i), wa[i], ga[i], diffs)
		}
		return
	}
	*diffs = append(*diffs, fmt.Sprintf("%s: slipway %s, moby %s", path, show(got), show(want)))
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sortEnv sorts Config.Env of a decoded inspect document in place.
func sortEnv(doc any) {
	m, _ := doc.(map[string]any)
	cfg, _ := m["Config"].(map[string]any)
	env, _ := cfg["Env"].([]any)
	sort.Slice(env, func(i, j int) bool { return fmt.Sprint(env[i]) < fmt.Sprint(env[j]) })
}
