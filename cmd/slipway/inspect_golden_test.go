package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// The inspect goldens in testdata/inspect are what moby (HEAD, answering API 1.50 as slipway
// serve does) returns from GET /containers/{id}/json for a container that was created and
// never started, derived field by field from moby's source; testdata/inspect/README.md says
// where each non-obvious value comes from. Values that must differ between two engines are
// placeholders: <ID>, <ID12>, <NAME>, <CREATED>, <ROOT> (the state root), <IMAGE_ID>,
// <MANIFEST_DIGEST>, <SIZE>, <TARGET_ID>, <STORAGE> and <ALLOC> (addresses).
type inspectCase struct {
	golden string // testdata/inspect/<golden>.json
	name   string // ?name=, empty for a generated one
	body   string // the create body, as a client sends it
}

var inspectCases = []inspectCase{
	{golden: "plain", body: `{"Image":"example.com/app:1"}`},
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
	}`},
	{golden: "linked", name: "client", body: `{
		"Image": "example.com/app:1",
		"HostConfig": {"Links": ["target:db"], "Privileged": true, "SecurityOpt": ["no-new-privileges"]}
	}`},
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
			if err := json.Unmarshal(call(t, c, "POST", "/containers/create"+q, tc.body, http.StatusCreated), &cr); err != nil {
				t.Fatal(err)
			}
			raw := call(t, c, "GET", "/containers/"+cr.ID+"/json", "", http.StatusOK)
			got := normalise(t, raw, s.root, cr.ID, target.ID, tc.name == "")
			want := readGolden(t, filepath.Join("testdata", "inspect", tc.golden+".json"))
			var all, diffs []string
			compareJSON("", want, got, &all)
			for _, d := range all {
				if reason, ok := knownInspectDiffs[strings.SplitN(d, ":", 2)[0]]; ok {
					t.Logf("known difference, %s: %s", reason, d)
					continue
				}
				diffs = append(diffs, d)
			}
			if len(diffs) > 0 {
				pretty, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("inspect differs from moby's (%s):\n%s\n\nslipway, normalised:\n%s", tc.golden, strings.Join(diffs, "\n"), pretty)
			}
		})
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
func normalise(t *testing.T, raw []byte, root, id, targetID string, generatedName bool) any {
	t.Helper()
	s := string(raw)
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
