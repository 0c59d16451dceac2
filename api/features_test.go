package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"

	"github.com/slipwayhq/slipway/core"
)

// load posts the test image to /images/load with the query q and returns the stream.
func load(t *testing.T, h *Server, q string) string {
	t.Helper()
	req := httptest.NewRequest("POST", "/v1.50/images/load"+q, bytes.NewReader(imageTar(t)))
	req.Header.Set("Content-Type", "application/x-tar")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("load: %d %s %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	return rec.Body.String()
}

func TestImageLoadProgress(t *testing.T) {
	e := openEngine(t, false)
	h := New(e, nil)
	out := load(t, h, "?quiet=0")
	if !strings.HasSuffix(out, "\r\n") {
		t.Errorf("stream %q: lines do not end with \\r\\n as moby's", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	res, body := do(t, h, "GET", "/v1.50/images/"+testImage+"/json", "", "")
	var ins image.InspectResponse
	if err := json.Unmarshal([]byte(body), &ins); err != nil || res.StatusCode != 200 || len(ins.RootFS.Layers) != 1 {
		t.Fatalf("inspect: %d %s", res.StatusCode, body)
	}
	short := strings.TrimPrefix(ins.RootFS.Layers[0], "sha256:")[:12]
	if len(lines) < 2 {
		t.Fatalf("stream %q: want progress, then the result", out)
	}
	for i, l := range lines[:len(lines)-1] {
		var m struct {
			Status         string
			ID             string
			Progress       string
			ProgressDetail struct{ Current, Total int64 }
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if m.Status != "Loading layer" || m.ID != short || m.ProgressDetail.Total <= 0 || m.ProgressDetail.Current <= 0 ||
			!strings.HasPrefix(m.Progress, "[") || !strings.Contains(m.Progress, "/") {
			t.Errorf("line %d %q: want Loading layer progress of %s", i, l, short)
		}
		if i == len(lines)-2 && (m.ProgressDetail.Current != m.ProgressDetail.Total || !strings.HasPrefix(m.Progress, "["+strings.Repeat("=", 50)+">] ")) {
			t.Errorf("last progress %q is not complete", l)
		}
	}
	if want := `{"stream":"Loaded image: ` + testImage + `\n"}`; lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
	// Loaded again: moby skips the layers it holds; quiet (the default) shows no progress.
	for _, q := range []string{"?quiet=0", "?quiet=1", ""} {
		if out := load(t, h, q); out != `{"stream":"Loaded image: `+testImage+`\n"}`+"\r\n" {
			t.Errorf("load%s again: %q", q, out)
		}
	}
}

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		cur, total int64
		want       string
	}{
		{0, 0, ""},
		{1500, 0, "   1.5kB"},
		{512, 1024, "[=========================>                         ]     512B/1.024kB"},
		{1024, 1024, "[==================================================>]  1.024kB/1.024kB"},
		{2048, 1024, "[==================================================>]  2.048kB"},
	} {
		if got := progressBar(tc.cur, tc.total); got != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.cur, tc.total, got, tc.want)
		}
	}
}

// create creates a container through the API and returns its ID.
func create(t *testing.T, h *Server, name, body string) string {
	t.Helper()
	res, out := do(t, h, "POST", "/v1.50/containers/create?name="+name, "application/json", body)
	var cr container.CreateResponse
	if err := json.Unmarshal([]byte(out), &cr); err != nil || res.StatusCode != 201 {
		t.Fatalf("create %s: %d %s", name, res.StatusCode, out)
	}
	return cr.ID
}

// names lists the containers matching filters (JSON) and returns their names, newest first.
func names(t *testing.T, h *Server, filters string) (int, string) {
	t.Helper()
	res, out := do(t, h, "GET", "/v1.50/containers/json?all=1&filters="+url.QueryEscape(filters), "", "")
	if res.StatusCode != 200 {
		var e struct{ Message string }
		json.Unmarshal([]byte(out), &e)
		return res.StatusCode, e.Message
	}
	var list []container.Summary
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, c := range list {
		n = append(n, strings.TrimPrefix(c.Names[0], "/"))
	}
	return 200, strings.Join(n, ",")
}

func TestContainerListFilters(t *testing.T) {
	needRoot(t)
	h := New(openEngine(t, true), nil)
	a := create(t, h, "aa", `{"Image":"`+testImage+`"}`)
	create(t, h, "bb", `{"Image":"`+testImage+`","Volumes":{"/data":{}}}`)
	c := create(t, h, "cc", `{"Image":"`+testImage+`"}`)
	_, all := names(t, h, `{}`)
	if all != "cc,bb,aa" {
		t.Fatalf("list: %q, want cc,bb,aa", all)
	}
	res, out := do(t, h, "GET", "/v1.50/containers/json?filters="+url.QueryEscape(`{"before":["cc"]}`), "", "")
	if res.StatusCode != 200 || strings.TrimSpace(out) != "[]" {
		t.Errorf("before=cc without all: %d %s, want none (nothing runs)", res.StatusCode, out)
	}
	_, out = do(t, h, "GET", "/v1.50/containers/json", "", "")
	var nw []container.Summary
	json.Unmarshal([]byte(out), &nw)
	_, out = do(t, h, "GET", "/v1.50/containers/json?all=1&filters="+url.QueryEscape(`{"name":["^aa$"]}`), "", "")
	if err := json.Unmarshal([]byte(out), &nw); err != nil || len(nw) != 1 || nw[0].NetworkSettings == nil || len(nw[0].NetworkSettings.Networks) == 0 {
		t.Fatalf("container aa: %s", out)
	}
	var netName, netID string
	for k, v := range nw[0].NetworkSettings.Networks {
		netName, netID = k, v.NetworkID
	}
	for _, tc := range []struct {
		filters string
		status  int
		want    string
	}{
		{`{"before":["cc"]}`, 200, "bb,aa"},
		{`{"before":["/cc"]}`, 200, "bb,aa"},
		{`{"before":["` + c + `"]}`, 200, "bb,aa"},
		{`{"since":["aa"]}`, 200, "cc,bb"},
		{`{"since":["` + a + `"]}`, 200, "cc,bb"},
		{`{"before":["cc"],"since":["aa"]}`, 200, "bb"},
		{`{"before":["aa"]}`, 200, ""},
		{`{"before":["nosuch"]}`, 404, "No such container: nosuch"},
		{`{"since":["` + c[:12] + `"]}`, 404, "No such container: " + c[:12]}, // moby: a full ID or a name
		{`{"bogus":["x"]}`, 400, "invalid filter 'bogus'"},
		{`{"exited":["0"]}`, 200, ""},
		{`{"exited":["x"]}`, 400, `invalid filter 'exited=x': strconv.Atoi: parsing "x": invalid syntax`},
		{`{"health":["none"]}`, 200, "cc,bb,aa"},
		{`{"health":["healthy"]}`, 200, ""},
		{`{"health":["sick"]}`, 400, "invalid filter 'health=sick': invalid value for health (sick): must be one of none, starting, healthy, unhealthy"},
		{`{"is-task":["false"]}`, 200, "cc,bb,aa"},
		{`{"is-task":["true"]}`, 200, ""},
		{`{"is-task":["maybe"]}`, 400, "invalid filter 'is-task=[maybe]'"},
		{`{"isolation":["default"]}`, 200, "cc,bb,aa"},
		{`{"publish":["80"]}`, 200, ""},
		{`{"expose":["80-81/tcp"]}`, 200, ""},
		{`{"publish":["1:80"]}`, 400, "filter for 'publish' should not contain ':': 1:80"},
		{`{"expose":["x"]}`, 400, "error while looking up for expose x: invalid start port 'x': invalid syntax"},
		{`{"network":["` + netName + `"]}`, 200, "cc,bb,aa"},
		{`{"network":["` + netID[:6] + `"]}`, 200, "cc,bb,aa"},
		{`{"network":["nosuch"]}`, 200, ""},
		{`{"volume":["/data"]}`, 200, "bb"},
		{`{"volume":["/nothing"]}`, 200, ""},
	} {
		status, got := names(t, h, tc.filters)
		if status != tc.status || got != tc.want {
			t.Errorf("filters %s: %d %q, want %d %q", tc.filters, status, got, tc.status, tc.want)
		}
	}
}

func TestContainerSize(t *testing.T) {
	needRoot(t)
	e := openEngine(t, true)
	h := New(e, nil)
	_, out := do(t, h, "GET", "/v1.50/images/json", "", "")
	var imgs []image.Summary
	if err := json.Unmarshal([]byte(out), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("images: %s", out)
	}
	if imgs[0].Size != 3 { // /bin/app holds "app"
		t.Errorf("image Size %d, want 3", imgs[0].Size)
	}
	id := create(t, h, "sized", `{"Image":"`+testImage+`"}`)

	// Without size, the fields are absent.
	_, out = do(t, h, "GET", "/v1.50/containers/json?all=1", "", "")
	if strings.Contains(out, "SizeRw") || strings.Contains(out, "SizeRootFs") {
		t.Errorf("list without size: %s", out)
	}
	_, out = do(t, h, "GET", "/v1.50/containers/sized/json", "", "")
	if strings.Contains(out, "SizeRw") || strings.Contains(out, "SizeRootFs") {
		t.Errorf("inspect without size: %s", out)
	}
	rec, err := e.Record(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	rw := rec.RootFS.Data["UpperDir"]
	if rw == "" {
		rw = rec.RootFS.Data["Dir"]
	}
	if rw == "" {
		t.Fatalf("no read-write directory in %v", rec.RootFS.Data)
	}
	sizes := func() (int64, int64, int64, int64) {
		t.Helper()
		_, out := do(t, h, "GET", "/v1.50/containers/json?all=1&size=1", "", "")
		var list []container.Summary
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
			t.Fatalf("list with size: %s", out)
		}
		_, out = do(t, h, "GET", "/v1.50/containers/sized/json?size=1", "", "")
		var ins container.InspectResponse
		if err := json.Unmarshal([]byte(out), &ins); err != nil || ins.SizeRw == nil || ins.SizeRootFs == nil {
			t.Fatalf("inspect with size: %s", out)
		}
		return list[0].SizeRw, list[0].SizeRootFs, *ins.SizeRw, *ins.SizeRootFs
	}
	rw0, root0, irw0, iroot0 := sizes()
	if rw0 != irw0 || root0 != iroot0 || root0 != rw0+3 {
		t.Errorf("fresh container: list %d/%d, inspect %d/%d; want equal, and SizeRootFs = SizeRw + 3", rw0, root0, irw0, iroot0)
	}
	// 1000 bytes written, a hard link to them, an empty file and a directory: 1000 more.
	if err := os.MkdirAll(filepath.Join(rw, "var", "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rw, "var", "new", "f"), bytes.Repeat([]byte("z"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(rw, "var", "new", "f"), filepath.Join(rw, "var", "new", "g")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rw, "var", "new", "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rw1, root1, irw1, iroot1 := sizes()
	if rw1 != rw0+1000 || root1 != root0+1000 || irw1 != rw1 || iroot1 != root1 {
		t.Errorf("after writing 1000 bytes: list %d/%d, inspect %d/%d; want %d/%d", rw1, root1, irw1, iroot1, rw0+1000, root0+1000)
	}
}

func TestImageEventsOnTheLog(t *testing.T) {
	e := openEngine(t, false)
	h := New(e, nil)
	live, cancel := e.Subscribe()
	defer cancel()
	start := time.Now()
	load(t, h, "?quiet=1")
	select {
	case ev := <-live:
		if ev.Type != "image" || ev.Action != "load" || ev.Seq == 0 {
			t.Errorf("live event %+v, want the image load", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no live event for the load")
	}
	res, out := do(t, h, "DELETE", "/v1.50/images/"+testImage, "", "")
	if res.StatusCode != 200 {
		t.Fatalf("delete: %d %s", res.StatusCode, out)
	}
	var del []image.DeleteResponse
	if err := json.Unmarshal([]byte(out), &del); err != nil || len(del) != 2 {
		t.Fatalf("delete: %s", out)
	}
	id := del[1].Deleted
	time.Sleep(10 * time.Millisecond)
	q := fmt.Sprintf("?since=%d&until=%d.%09d", start.Unix()-1, time.Now().Unix(), time.Now().Nanosecond())
	events := func(filters string) []eventMessage {
		t.Helper()
		res, out := do(t, h, "GET", "/v1.50/events"+q+"&filters="+url.QueryEscape(filters), "", "")
		if res.StatusCode != 200 {
			t.Fatalf("events %s: %d %s", filters, res.StatusCode, out)
		}
		var evs []eventMessage
		dec := json.NewDecoder(strings.NewReader(out))
		for dec.More() {
			var m eventMessage
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, m)
		}
		return evs
	}
	str := func(evs []eventMessage) string {
		var s []string
		for _, m := range evs {
			s = append(s, fmt.Sprintf("%s %s %s %s", m.Type, m.Action, m.Actor.ID, m.Actor.Attributes["name"]))
		}
		return strings.Join(s, "|")
	}
	want := "image load " + id + " " + id + "|image untag " + id + " " + testImage + "|image delete " + id + " " + id
	if got := str(events(`{"type":["image"]}`)); got != want {
		t.Errorf("type=image: %q, want %q", got, want)
	}
	if evs := events(`{"type":["image"]}`); len(evs) == 3 && (evs[0].Status != "load" || evs[0].ID != id || evs[0].Actor.Attributes["from"] != "image") {
		t.Errorf("load event %+v: want the legacy status and id, and the image's labels", evs[0])
	}
	for filters, want := range map[string]string{
		`{"image":["` + testImage + `"]}`:             "image untag " + id + " " + testImage,
		`{"image":["example.com/app"]}`:               "image untag " + id + " " + testImage,
		`{"image":["` + id + `"]}`:                    want,
		`{"event":["delete"]}`:                        "image delete " + id + " " + id,
		`{"type":["container"]}`:                      "",
		`{"type":["image"],"event":["load","untag"]}`: "image load " + id + " " + id + "|image untag " + id + " " + testImage,
	} {
		if got := str(events(filters)); got != want {
			t.Errorf("filters %s: %q, want %q", filters, got, want)
		}
	}
	if err := e.Emit(core.Event{Type: "image"}); err == nil {
		t.Error("Emit of an event without an action: no error")
	}
}
