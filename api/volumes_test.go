package api

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/volume"
)

// volumeNames lists the volumes matching filters (JSON) through GET target and returns the
// status and their names, sorted, or the error message.
func volumeNames(t *testing.T, h *Server, target, filters string) (int, string) {
	t.Helper()
	if filters != "" {
		target += "?filters=" + url.QueryEscape(filters)
	}
	res, out := do(t, h, "GET", target, "", "")
	if res.StatusCode != 200 {
		return res.StatusCode, errMessage(t, out)
	}
	var lr volume.ListResponse
	if err := json.Unmarshal([]byte(out), &lr); err != nil {
		t.Fatalf("GET %s: %v: %s", target, err, out)
	}
	if lr.Volumes == nil || !strings.Contains(out, `"Volumes":[`) {
		t.Errorf("GET %s: Volumes is not a list: %s", target, out)
	}
	var n []string
	for _, v := range lr.Volumes {
		n = append(n, v.Name)
	}
	sort.Strings(n)
	return 200, strings.Join(n, ",")
}

func errMessage(t *testing.T, body string) string {
	t.Helper()
	var e struct{ Message string }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Message
}

// TestVolumeEndpoints follows moby's volume router for the local driver: create (an existing
// volume is returned as it is), inspect, the list filters, remove with and without force,
// prune of anonymous volumes or all of them, with moby's texts.
func TestVolumeEndpoints(t *testing.T) {
	e := openEngine(t, false)
	h := New(e, nil)
	for _, tc := range []struct {
		target, body string
		status       int
		want         string // the volume's name, or the error message
	}{
		{"/v1.50/volumes/create", `{"Name":"data","Labels":{"tier":"db"}}`, 201, "data"},
		{"/volumes/create", `{"Name":"data","Labels":{"other":"x"}}`, 201, "data"}, // exists: as it is
		{"/v1.50/volumes/create", `{"Name":"cache","Driver":"local"}`, 201, "cache"},
		{"/v1.50/volumes/create", `{"Name":"x"}`, 400, "create x: volume name is too short, names should be at least two alphanumeric characters"},
		{"/v1.50/volumes/create", `{"Name":"a/b"}`, 400, `create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`},
		{"/v1.50/volumes/create", `{"Name":"nfs","Driver":"nfsplugin"}`, 404, `create nfs: error looking up volume plugin nfsplugin: plugin "nfsplugin" not found`},
		{"/v1.50/volumes/create", `{"Name":"data","Driver":"nfsplugin"}`, 404, `create data: error looking up volume plugin nfsplugin: plugin "nfsplugin" not found`},
		{"/v1.50/volumes/create", `{"Name":`, 400, "invalid JSON: unexpected EOF"},
	} {
		res, out := do(t, h, "POST", tc.target, "application/json", tc.body)
		got := ""
		if res.StatusCode == 201 {
			var v volume.Volume
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatal(err)
			}
			got = v.Name
		} else {
			got = errMessage(t, out)
		}
		if res.StatusCode != tc.status || got != tc.want {
			t.Errorf("POST %s %s: %d %q, want %d %q", tc.target, tc.body, res.StatusCode, got, tc.status, tc.want)
		}
	}
	res, out := do(t, h, "POST", "/v1.50/volumes/create", "text/plain", `{}`)
	if res.StatusCode != 400 || errMessage(t, out) != "unsupported Content-Type header (text/plain): must be 'application/json'" {
		t.Errorf("create with text/plain: %d %s", res.StatusCode, out)
	}
	// An empty body makes an anonymous volume, as moby does.
	res, out = do(t, h, "POST", "/v1.50/volumes/create", "", "")
	var anon volume.Volume
	if err := json.Unmarshal([]byte(out), &anon); err != nil || res.StatusCode != 201 || len(anon.Name) != 64 {
		t.Fatalf("anonymous create: %d %s", res.StatusCode, out)
	}
	if v, ok := anon.Labels["com.docker.volume.anonymous"]; !ok || v != "" {
		t.Errorf("anonymous volume labels %v, want moby's com.docker.volume.anonymous", anon.Labels)
	}

	res, out = do(t, h, "GET", "/v1.50/volumes/data", "", "")
	var v volume.Volume
	if err := json.Unmarshal([]byte(out), &v); err != nil || res.StatusCode != 200 {
		t.Fatalf("inspect data: %d %s", res.StatusCode, out)
	}
	if want := filepath.Join(e.Root(), "volumes", "data", "_data"); v.Mountpoint != want || v.Driver != "local" || v.Scope != "local" ||
		v.Labels["tier"] != "db" || len(v.Labels) != 1 || v.CreatedAt == "" {
		t.Errorf("inspect data: %+v", v)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Errorf("data directory: %v", err)
	}
	res, out = do(t, h, "GET", "/volumes/nosuch", "", "")
	if res.StatusCode != 404 || errMessage(t, out) != "get nosuch: no such volume" {
		t.Errorf("inspect nosuch: %d %s", res.StatusCode, out)
	}

	sorted := []string{"cache", "data", anon.Name}
	sort.Strings(sorted)
	all := strings.Join(sorted, ",")
	for _, tc := range []struct {
		filters string
		status  int
		want    string
	}{
		{"", 200, all},
		{`{}`, 200, all},
		{`{"name":["dat"]}`, 200, "data"}, // moby's name filter is a regular expression
		{`{"name":["^cache$"]}`, 200, "cache"},
		{`{"driver":["local"]}`, 200, all},
		{`{"driver":["loc"]}`, 200, ""}, // the driver is matched exactly
		{`{"label":["tier"]}`, 200, "data"},
		{`{"label":["tier=db"]}`, 200, "data"},
		{`{"label":["tier=web"]}`, 200, ""},
		{`{"label":["com.docker.volume.anonymous"]}`, 200, anon.Name},
		{`{"dangling":["true"]}`, 200, all},
		{`{"dangling":["1"]}`, 200, all},
		{`{"dangling":["false"]}`, 200, ""},
		{`{"dangling":["maybe"]}`, 400, "invalid filter 'dangling=maybe'"},
		{`{"bogus":["x"]}`, 400, "invalid filter 'bogus'"},
		{`{"label!":["x"]}`, 400, "invalid filter 'label!'"},
		{`nope`, 400, "error reading volume filters: invalid filter: invalid character 'o' in literal null (expecting 'u')"},
	} {
		if status, got := volumeNames(t, h, "/v1.50/volumes", tc.filters); status != tc.status || got != tc.want {
			t.Errorf("volumes filters %s: %d %q, want %d %q", tc.filters, status, got, tc.status, tc.want)
		}
	}

	for _, tc := range []struct {
		target string
		status int
		want   string
	}{
		{"/v1.50/volumes/nosuch", 404, "get nosuch: no such volume"},
		{"/v1.50/volumes/nosuch?force=1", 204, ""},
		{"/v1.50/volumes/cache", 204, ""},
		{"/v1.50/volumes/cache", 404, "get cache: no such volume"},
	} {
		res, out := do(t, h, "DELETE", tc.target, "", "")
		got := ""
		if res.StatusCode != 204 {
			got = errMessage(t, out)
		}
		if res.StatusCode != tc.status || got != tc.want {
			t.Errorf("DELETE %s: %d %q, want %d %q", tc.target, res.StatusCode, got, tc.status, tc.want)
		}
	}

	// Prune: bad filters first, then anonymous volumes only, then with all=true the rest.
	os.WriteFile(filepath.Join(anon.Mountpoint, "f"), []byte("12345"), 0o644)
	for _, tc := range []struct {
		filters string
		status  int
		want    string // deleted names, or the message
		space   uint64
	}{
		{`{"all":["maybe"]}`, 400, `invalid filter 'all': strconv.ParseBool: parsing "maybe": invalid syntax`, 0},
		{`{"all":["true","false"]}`, 400, `invalid filter 'all=[false true]': only one value is expected`, 0},
		{`{"dangling":["true"]}`, 400, "invalid filter 'dangling'", 0},
		{`{"label":["tier=db"]}`, 200, "", 0}, // data is named
		{``, 200, anon.Name, 5},
		{`{"all":["true"],"label!":["tier=db"]}`, 200, "", 0},
		{`{"all":["1"],"label":["tier"]}`, 200, "data", 0},
	} {
		target := "/v1.50/volumes/prune"
		if tc.filters != "" {
			target += "?filters=" + url.QueryEscape(tc.filters)
		}
		res, out := do(t, h, "POST", target, "", "")
		if res.StatusCode != 200 {
			if got := errMessage(t, out); res.StatusCode != tc.status || got != tc.want {
				t.Errorf("prune %s: %d %q, want %d %q", tc.filters, res.StatusCode, got, tc.status, tc.want)
			}
			continue
		}
		var rep volume.PruneReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.VolumesDeleted == nil {
			t.Fatalf("prune %s: %s", tc.filters, out)
		}
		if got := strings.Join(rep.VolumesDeleted, ","); tc.status != 200 || got != tc.want || rep.SpaceReclaimed != tc.space {
			t.Errorf("prune %s: %q reclaimed %d, want %q and %d", tc.filters, got, rep.SpaceReclaimed, tc.want, tc.space)
		}
	}
	if status, got := volumeNames(t, h, "/volumes", ""); status != 200 || got != "" {
		t.Errorf("volumes after prune: %d %q, want none", status, got)
	}

	// Below API 1.42 prune removes named volumes too.
	do(t, h, "POST", "/v1.50/volumes/create", "application/json", `{"Name":"old"}`)
	res, out = do(t, h, "POST", "/v1.41/volumes/prune", "", "")
	if res.StatusCode != 200 || !strings.Contains(out, `"VolumesDeleted":["old"]`) {
		t.Errorf("prune at 1.41: %d %s", res.StatusCode, out)
	}
	// Routes: methods that do not exist are 404 as for every other route.
	if res, _ := do(t, h, "PUT", "/v1.50/volumes/data", "", ""); res.StatusCode != 404 {
		t.Errorf("PUT /volumes/data: %d, want 404", res.StatusCode)
	}
}

// TestVolumesInUse checks the volume endpoints against containers: a volume in use is not
// dangling, cannot be removed (force or not), is not pruned; rm -v removes the anonymous one.
// It also checks that the link paths to a container are among its names, as in moby's ps.
func TestVolumesInUse(t *testing.T) {
	needRoot(t)
	h := New(openEngine(t, true), nil)
	id := create(t, h, "db", `{"Image":"`+testImage+`","Volumes":{"/anon":{}},"HostConfig":{"Binds":["named:/data"]}}`)
	create(t, h, "other", `{"Image":"`+testImage+`"}`)
	if status, got := volumeNames(t, h, "/v1.50/volumes", `{"dangling":["false"]}`); status != 200 || !strings.HasPrefix(got, "named") && !strings.HasSuffix(got, "named") || strings.Count(got, ",") != 1 {
		t.Errorf("volumes in use: %d %q, want named and the anonymous one", status, got)
	}
	if status, got := volumeNames(t, h, "/v1.50/volumes", `{"dangling":["true"]}`); status != 200 || got != "" {
		t.Errorf("dangling volumes: %d %q, want none", status, got)
	}
	for _, q := range []string{"", "?force=1"} {
		res, out := do(t, h, "DELETE", "/v1.50/volumes/named"+q, "", "")
		if res.StatusCode != 409 || errMessage(t, out) != "remove named: volume is in use - ["+id+"]" {
			t.Errorf("DELETE named%s: %d %s", q, res.StatusCode, out)
		}
	}
	res, out := do(t, h, "POST", "/v1.50/volumes/prune?filters="+url.QueryEscape(`{"all":["true"]}`), "", "")
	if res.StatusCode != 200 || !strings.Contains(out, `"VolumesDeleted":[]`) {
		t.Errorf("prune with every volume in use: %d %s", res.StatusCode, out)
	}

	// Links: "/web/db" is one of db's names; the name filter matches db's own name only.
	create(t, h, "web", `{"Image":"`+testImage+`","HostConfig":{"Links":["db:db"]}}`)
	_, out = do(t, h, "GET", "/v1.50/containers/json?all=1&filters="+url.QueryEscape(`{"name":["^/?db$"]}`), "", "")
	var list []container.Summary
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || strings.Join(list[0].Names, ",") != "/db,/web/db" {
		t.Errorf("db's names: %s", out)
	}
	_, out = do(t, h, "GET", "/v1.50/containers/json?all=1&filters="+url.QueryEscape(`{"name":["^/?web"]}`), "", "")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || strings.Join(list[0].Names, ",") != "/web" {
		t.Errorf("name=^/?web: %s, want web only (a link path is no container name)", out)
	}
	if res, out := do(t, h, "DELETE", "/v1.50/containers/web", "", ""); res.StatusCode != 204 {
		t.Fatalf("rm web: %d %s", res.StatusCode, out)
	}

	// rm -v removes db's anonymous volume; the named one stays, unused.
	if res, out := do(t, h, "DELETE", "/v1.50/containers/db?v=1", "", ""); res.StatusCode != 204 {
		t.Fatalf("rm -v db: %d %s", res.StatusCode, out)
	}
	if status, got := volumeNames(t, h, "/v1.50/volumes", ""); status != 200 || got != "named" {
		t.Errorf("volumes after rm -v: %d %q, want named", status, got)
	}
	if status, got := volumeNames(t, h, "/v1.50/volumes", `{"dangling":["true"]}`); status != 200 || got != "named" {
		t.Errorf("dangling after rm -v: %d %q, want named", status, got)
	}
}
