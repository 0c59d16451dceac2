package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core/errdefs"
)

func TestStatusOf(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errdefs.InvalidArgument(base), 400},
		{errdefs.NotFound(base), 404},
		{errdefs.Conflict(base), 409},
		{errdefs.FailedPrecondition(base), 400},
		{errdefs.Unavailable(base), 503},
		{errdefs.Canceled(base), 500},
		{errdefs.Internal(base), 500},
		{base, 500},
		{fmt.Errorf("wrapped: %w", errdefs.NotFound(base)), 404},
		{errors.Join(errdefs.Conflict(base), errdefs.Internal(base)), 409},
		{notImplemented{"no pull"}, 501},
	} {
		if got := StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v [%v]) = %d, want %d", tc.err, errdefs.ClassOf(tc.err), got, tc.want)
		}
	}
}

func TestPing(t *testing.T) {
	h := New(openEngine(t, false), nil)
	for _, target := range []string{"/_ping", "/v1.50/_ping", "/v1.24/_ping"} {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			res, body := do(t, h, method, target, "", "")
			if res.StatusCode != 200 {
				t.Fatalf("%s %s: status %d", method, target, res.StatusCode)
			}
			for k, want := range map[string]string{
				"Api-Version": DefaultVersion, "Ostype": "linux", "Docker-Experimental": "false", "Builder-Version": "1",
				"Swarm": "inactive", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
			} {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s %s: header %s = %q, want %q", method, target, k, got, want)
				}
			}
			wantBody := "OK"
			if method == http.MethodHead {
				wantBody = ""
			}
			if body != wantBody {
				t.Errorf("%s %s: body %q, want %q", method, target, body, wantBody)
			}
		}
	}
}

func TestVersionNegotiationAndRouting(t *testing.T) {
	h := New(openEngine(t, false), nil)
	for _, tc := range []struct {
		method, target string
		status         int
		contentType    string
		body           string // regexp
	}{
		{"GET", "/version", 200, "application/json", `"ApiVersion":"1.50"`},
		{"GET", "/v1.50/version", 200, "application/json", `"MinAPIVersion":"1.24"`},
		{"GET", "/v1.24/version", 200, "application/json", `"Name":"Engine"`},
		{"GET", "/v1.44/info", 200, "application/json", `"OSType":"linux"`},
		{"GET", "/v1.51/version", 400, "application/json", `^\{"message":"client version 1.51 is too new. Maximum supported API version is 1.50"\}\n$`},
		{"GET", "/v1.57/containers/json", 400, "application/json", `too new`},
		{"GET", "/v1.23/version", 400, "text/plain; charset=utf-8", `^client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version\n$`},
		{"GET", "/v1.12/version", 400, "text/plain; charset=utf-8", `too old`},
		{"GET", "/v1.50/networks", 404, "application/json", `^\{"message":"page not found"\}\n$`},
		{"GET", "/volumes", 200, "application/json", `^\{"Volumes":\[\],"Warnings":null\}\n$`},
		{"GET", "/v1.50/volumes/create", 404, "application/json", `^\{"message":"get create: no such volume"\}\n$`},
		{"POST", "/v1.50/volumes", 404, "application/json", `page not found`},
		{"POST", "/v1.50/containers/x/start", 404, "application/json", `page not found`},
		{"PUT", "/v1.50/version", 404, "application/json", `page not found`},
		{"GET", "/v1.50/containers/create", 404, "application/json", `page not found`},
		{"GET", "/vx/version", 404, "application/json", `page not found`},
		{"GET", "/v1.50/containers/nosuch/json", 404, "application/json", `^\{"message":"No such container: nosuch"\}\n$`},
		{"DELETE", "/v1.50/containers/nosuch", 404, "application/json", `No such container: nosuch`},
		{"GET", "/v1.50/images/docker.io/library/busybox:latest/json", 404, "application/json", `No such image: busybox:latest`},
		{"GET", "/v1.50/images/sha256:0123456789012345678901234567890123456789012345678901234567890123/json", 404, "application/json", `No such image`},
		{"DELETE", "/v1.50/images/nosuch:1", 404, "application/json", `No such image: nosuch:1`},
		{"POST", "/v1.50/images/create?fromImage=docker.io/library/busybox&tag=latest", 501, "application/json", `slipway does not pull images: load busybox:latest with docker load`},
		{"GET", "/v1.50/containers/json?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D", 400, "application/json", `invalid filter 'bogus'`},
		{"GET", "/v1.50/containers/json?filters=%7B%22status%22%3A%5B%22sleeping%22%5D%7D", 400, "application/json", `invalid filter 'status=sleeping'`},
		{"GET", "/v1.50/containers/json?filters=nojson", 400, "application/json", `invalid filter`},
		{"GET", "/v1.50/events?since=10&until=5", 400, "application/json", "`since` time \\(10\\) cannot be after `until` time \\(5\\)"},
		{"GET", "/v1.50/events?since=yesterday", 400, "application/json", `invalid value for since`},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			res, body := do(t, h, tc.method, tc.target, "", "")
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %q)", res.StatusCode, tc.status, body)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if !regexp.MustCompile(tc.body).MatchString(body) {
				t.Errorf("body %q does not match %q", body, tc.body)
			}
		})
	}
}

func TestDecodeCreate(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		check      func(*container.CreateRequest) error
		err        string
	}{
		{name: "unknown keys and nulls", body: `{"Image":"x","Bogus":{"a":[1]},"Entrypoint":null,"Labels":null,"HostConfig":{"Nope":1,"Binds":null},"NetworkingConfig":null}`,
			check: func(r *container.CreateRequest) error {
				if r.Image != "x" || r.Entrypoint != nil || r.HostConfig == nil || r.NetworkingConfig != nil {
					return fmt.Errorf("got %+v", r)
				}
				return nil
			}},
		{name: "string Cmd", body: `{"Image":"x","Cmd":"echo hi"}`,
			check: func(r *container.CreateRequest) error { return eq(r.Cmd, []string{"echo hi"}) }},
		{name: "string Entrypoint and lower-case cmd list", body: `{"Image":"x","entrypoint":"/bin/sh","cmd":["-c","true"]}`,
			check: func(r *container.CreateRequest) error {
				if err := eq(r.Entrypoint, []string{"/bin/sh"}); err != nil {
					return err
				}
				return eq(r.Cmd, []string{"-c", "true"})
			}},
		{name: "string Shell and CapAdd", body: `{"Image":"x","Shell":"/bin/bash","HostConfig":{"CapAdd":"NET_ADMIN","CapDrop":["ALL"]}}`,
			check: func(r *container.CreateRequest) error {
				if err := eq(r.Shell, []string{"/bin/bash"}); err != nil {
					return err
				}
				if err := eq(r.HostConfig.CapDrop, []string{"ALL"}); err != nil {
					return err
				}
				return eq(r.HostConfig.CapAdd, []string{"NET_ADMIN"})
			}},
		{name: "docker-py networking config", body: `{"Image":"x","NetworkingConfig":{"mynet":null}}`,
			check: func(r *container.CreateRequest) error {
				if r.NetworkingConfig == nil || len(r.NetworkingConfig.EndpointsConfig) != 0 {
					return fmt.Errorf("NetworkingConfig %+v", r.NetworkingConfig)
				}
				return nil
			}},
		{name: "string where no string is allowed", body: `{"Image":"x","Env":"A=1"}`, err: `invalid JSON: json: cannot unmarshal string into Go struct field`},
		{name: "empty", body: ``, err: `^invalid JSON: got EOF while reading request body$`},
		{name: "broken", body: `{invalid json`, err: `^invalid JSON: invalid character 'i' looking for beginning of object key string$`},
		{name: "trailing", body: `{} trailing content`, err: `^unexpected content after JSON$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeCreate(strings.NewReader(tc.body))
			if tc.err != "" {
				if err == nil || !regexp.MustCompile(tc.err).MatchString(err.Error()) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("error %v (%v), want InvalidArgument matching %q", err, errdefs.ClassOf(err), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(r); err != nil {
				t.Error(err)
			}
		})
	}
}

func eq(got, want []string) error {
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

func TestParseFilters(t *testing.T) {
	for _, in := range []string{`{"label":{"a=b":true},"status":{"created":true}}`, `{"label":["a=b"],"status":["created"]}`} {
		f, err := parseFilters(in)
		if err != nil {
			t.Fatal(err)
		}
		if !f["label"]["a=b"] || !f["status"]["created"] || len(f) != 2 {
			t.Errorf("parseFilters(%s) = %v", in, f)
		}
		if !f.matchLabels("label", map[string]string{"a": "b", "c": "d"}) || f.matchLabels("label", map[string]string{"a": "c"}) {
			t.Errorf("matchLabels wrong for %v", f)
		}
	}
}

func TestParseUnixTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1735689600.000000000": time.Unix(1735689600, 0),
		"1735689600":           time.Unix(1735689600, 0),
		"1735689600.5":         time.Unix(1735689600, 500000000),
		"":                     {},
	} {
		got, err := parseUnixTime("since", in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseUnixTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestCreateBodyChecks(t *testing.T) {
	h := New(openEngine(t, false), nil)
	for _, tc := range []struct {
		name, ct, body string
		status         int
		msg            string
	}{
		{"text/plain", "text/plain", `{}`, 400, `unsupported Content-Type header (text/plain): must be 'application/json'`},
		{"broken", "application/json", `{invalid json`, 400, `invalid JSON: invalid character 'i' looking for beginning of object key string`},
		{"trailing", "application/json", `{} trailing content`, 400, `unexpected content after JSON`},
		{"empty", "application/json", ``, 400, `invalid JSON: got EOF while reading request body`},
		{"no config", "application/json", `{}`, 400, `config cannot be empty in order to create a container`},
		{"bad name", "application/json", `{"Image":"x"}`, 400, `Invalid container name (/-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`},
		{"invalid env", "application/json", `{"Image":"x","Env":["=foo"]}`, 400, `invalid environment variable: =foo`},
		{"missing image", "application/json", `{"Image":"test456:v1"}`, 404, `No such image: test456:v1`},
		{"charset is fine", "application/json; charset=utf-8", `{"Image":"test456"}`, 404, `No such image: test456:latest`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/v1.50/containers/create"
			if tc.name == "bad name" {
				target += "?name=/-bad"
			}
			res, body := do(t, h, "POST", target, tc.ct, tc.body)
			var e struct{ Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if res.StatusCode != tc.status || e.Message != tc.msg {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, e.Message, tc.status, tc.msg)
			}
		})
	}
}

func TestMultipleEndpointsByVersion(t *testing.T) {
	needRoot(t)
	h := New(openEngine(t, true), nil)
	body := `{"Image":"` + testImage + `","HostConfig":{"NetworkMode":"bridge"},"NetworkingConfig":{"EndpointsConfig":{"bridge":{},"slipway":{}}}}`
	res, out := do(t, h, "POST", "/v1.43/containers/create", "application/json", body)
	if res.StatusCode != 400 || !strings.Contains(out, "Container cannot be created with multiple network endpoints: bridge, slipway") {
		t.Errorf("1.43: %d %s", res.StatusCode, out)
	}
	res, out = do(t, h, "POST", "/v1.44/containers/create", "application/json", body)
	if res.StatusCode != 201 {
		t.Errorf("1.44: %d %s", res.StatusCode, out)
	}
}

// TestDecodeCreateFastPath checks decodeCreate's fast path (go-json-experiment with
// encoding/json's semantics) against encoding/json, which moby uses: on every body, either
// both refuse it (and decodeCreate answers with encoding/json's error), or both accept it
// with the same result.
func TestDecodeCreateFastPath(t *testing.T) {
	bodies := []string{
		fmt.Sprintf(createBody, "example.com/app:1"),
		`{"Image":"x","Bogus":{"a":[1]},"Entrypoint":null,"Labels":null,"HostConfig":{"Nope":1,"Binds":null},"NetworkingConfig":null}`,
		`{"image":"lower","HOSTCONFIG":{"memory":1024,"privileged":true},"cmd":["a"]}`,
		`{"Image":"a","Image":"b","image":"c"}`,
		`{"Image":"\u00e9\ud83d\ude00","Env":["A=\u0000"],"Labels":{"a":"1","A":"2"}}`,
		"{\"Image\":\"bad \xff utf-8\"}",
		`{"Image":"x","ExposedPorts":{"80/tcp":{},"53/udp":{}},"HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}}}`,
		`{"Image":"x","NetworkingConfig":{"EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":"172.30.0.2"},"Aliases":["a"]}}}}`,
		`{"Image":"x","NetworkingConfig":{"EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":"not an ip"}}}}}`,
		`{"Image":"x","HostConfig":{"Memory":1.5}}`,
		`{"Image":"x","HostConfig":{"Memory":100000000000000000000}}`,
		`{"Image":"x","HostConfig":{"Memory":"1"}}`,
		`{"Image":"x","StopTimeout":-1,"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}}`,
		`{"Image":"x","Cmd":"echo hi"}`,
		`{"Image":"x","Env":"A=1"}`,
		`{"Image":"x"} {}`,
		`{"Image":"x"}  `,
		`null`,
		`[]`,
		`{invalid`,
		``,
	}
	for _, body := range bodies {
		var fast, std container.CreateRequest
		ferr := jsonv1.Unmarshal([]byte(body), &fast)
		serr := decodeOne([]byte(body), &std)
		switch {
		case serr != nil && ferr == nil:
			t.Errorf("%s: the fast path accepts what encoding/json refuses (%v)", body, serr)
		case serr == nil && ferr == nil && !reflect.DeepEqual(fast, std):
			t.Errorf("%s: the fast path decodes\n%+v\nencoding/json\n%+v", body, fast, std)
		}
		got, err := decodeCreate(strings.NewReader(body))
		if (err == nil) != (serr == nil) && !strings.Contains(body, `"Cmd":"`) {
			t.Errorf("%s: decodeCreate error %v, encoding/json error %v", body, err, serr)
		}
		if err != nil && serr != nil && err.Error() != serr.Error() {
			t.Errorf("%s: decodeCreate error %q, want encoding/json's %q", body, err, serr)
		}
		if err == nil && serr == nil && !reflect.DeepEqual(*got, std) {
			t.Errorf("%s: decodeCreate gives %+v, want %+v", body, *got, std)
		}
	}
}
