package api

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/images"
	"github.com/slipwayhq/slipway/images/imagetest"
)

// TestImageTag checks POST /images/{name}/tag against moby's image router: the status and
// body of each outcome, the name moving between images, and the "tag" event.
func TestImageTag(t *testing.T) {
	e := openEngine(t, true)
	h := New(e, nil)
	live, cancel := e.Subscribe()
	defer cancel()

	tags := func(ref string) (string, []string) {
		t.Helper()
		res, out := do(t, h, "GET", "/v1.50/images/"+ref+"/json", "", "")
		if res.StatusCode != 200 {
			t.Fatalf("inspect %s: %d %s", ref, res.StatusCode, out)
		}
		var r image.InspectResponse
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r.ID, slices.Sorted(slices.Values(r.RepoTags))
	}
	id, _ := tags(testImage)

	for _, tc := range []struct {
		target string
		status int
		body   string // exact
		name   string // the name the tag gives, if any
	}{
		{"/v1.50/images/" + testImage + "/tag?repo=example.com/app&tag=2", 201, "", "example.com/app:2"},
		{"/v1.50/images/" + id + "/tag?repo=myapp", 201, "", "myapp:latest"},
		{"/v1.50/images/" + id[7:19] + "/tag?repo=localhost:5000/x/y&tag=v1", 201, "", "localhost:5000/x/y:v1"},
		{"/images/myapp/tag?repo=docker.io/library/myapp&tag=latest", 201, "", "myapp:latest"}, // its own name again
		// No repo: moby's handler returns errdefs.InvalidParameter(nil), which is nil: 200.
		{"/v1.50/images/" + testImage + "/tag", 200, "", ""},
		{"/v1.50/images/" + testImage + "/tag?repo=Bad", 400, `{"message":"invalid reference format: repository name (library/Bad) must be lowercase"}` + "\n", ""},
		{"/v1.50/images/" + testImage + "/tag?repo=app&tag=bad%20tag", 400, `{"message":"invalid tag format"}` + "\n", ""},
		{"/v1.50/images/" + testImage + "/tag?repo=app@" + id, 400, `{"message":"cannot import digest reference"}` + "\n", ""},
		{"/v1.50/images/" + testImage + "/tag?repo=sha256", 400, `{"message":"refusing to create an ambiguous tag using digest algorithm as name"}` + "\n", ""},
		{"/v1.50/images/nosuch/tag?repo=myapp", 404, `{"message":"No such image: nosuch:latest"}` + "\n", ""},
	} {
		res, body := do(t, h, "POST", tc.target, "", "")
		if res.StatusCode != tc.status || body != tc.body {
			t.Errorf("POST %s: %d %q, want %d %q", tc.target, res.StatusCode, body, tc.status, tc.body)
		}
		if tc.name == "" {
			continue
		}
		select {
		case ev := <-live:
			if ev.Type != "image" || ev.Action != "tag" || ev.ID != id || ev.Attrs["name"] != tc.name || ev.Attrs["from"] != "image" {
				t.Errorf("POST %s: event %+v, want image tag %s name=%s with the image's labels", tc.target, ev, id, tc.name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("POST %s: no tag event", tc.target)
		}
	}
	select {
	case ev := <-live:
		t.Errorf("event %+v after the failed tags, want none", ev)
	case <-time.After(50 * time.Millisecond):
	}
	if _, got := tags(id); !slices.Equal(got, []string{testImage, "example.com/app:2", "localhost:5000/x/y:v1", "myapp:latest"}) {
		t.Errorf("tags %q", got)
	}

	// Tagging a name another image holds moves it: a second image takes myapp:latest.
	var buf bytes.Buffer
	other := imagetest.Image{Tags: []string{"other:1"}, Platform: images.HostPlatform(), Config: ocispec.ImageConfig{Cmd: []string{"other"}}}
	if err := imagetest.WriteOCI(&buf, imagetest.Options{}, other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Images().(*images.Store).Load(t.Context(), &buf, images.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	res, body := do(t, h, "POST", "/v1.50/images/other:1/tag?repo=myapp", "", "")
	if res.StatusCode != 201 {
		t.Fatalf("tag other:1 myapp: %d %s", res.StatusCode, body)
	}
	if otherID, got := tags("myapp"); otherID == id || !slices.Equal(got, []string{"myapp:latest", "other:1"}) {
		t.Errorf("myapp after the move: %s %q", otherID, got)
	}
	if _, got := tags(id); !slices.Equal(got, []string{testImage, "example.com/app:2", "localhost:5000/x/y:v1"}) {
		t.Errorf("tags of the first image after the move %q", got)
	}
}
