package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestServeDockerTag drives POST /images/{name}/tag with the real docker CLI: docker tag,
// the new names in docker images, moby's errors, and the
// "tag" events docker events shows.
func TestServeDockerTag(t *testing.T) {
	start := time.Now()
	s, _ := dockerServer(t)
	id := strings.TrimSpace(s.ok(t, "image", "inspect", "--format", "{{.Id}}", testImage))

	if out := s.ok(t, "tag", testImage, "example.com/app:2"); out != "" {
		t.Errorf("docker tag: stdout %q, want nothing", out)
	}
	s.ok(t, "tag", id[7:19], "myapp")
	s.ok(t, "image", "tag", "myapp", "localhost:5000/team/app:v1")
	out := s.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
	for _, name := range []string{testImage, "example.com/app:2", "myapp:latest", "localhost:5000/team/app:v1"} {
		match(t, "docker images", out, `(?m)^`+strings.ReplaceAll(name, ".", `\.`)+` `+id[7:19]+`$`)
	}
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("docker images: %d lines, want 4:\n%s", n, out)
	}
	out = s.ok(t, "image", "inspect", "--format", "{{len .RepoTags}}", "example.com/app:2")
	match(t, "image inspect of the new name", out, `^4\n$`)

	// Errors: the CLI checks the target itself; the daemon the source.
	s.fails(t, 1, `^Error response from daemon: No such image: nosuch:latest\n$`, "tag", "nosuch", "myapp:2")
	s.fails(t, 1, `invalid reference format: repository name \(library/Bad\) must be lowercase`, "tag", testImage, "Bad")

	// Removing a name leaves the image and its other names.
	out = s.ok(t, "rmi", "example.com/app:2")
	match(t, "rmi of a tag", out, `^Untagged: example\.com/app:2\n$`)
	if out := s.ok(t, "images", "-q"); out != strings.Repeat(id[7:19]+"\n", 3) { // a row per name, as with dockerd
		t.Errorf("docker images -q after rmi of a tag: %q, want the image's three remaining names", out)
	}

	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	since := fmt.Sprint(start.Add(-time.Second).Unix())
	out = s.ok(t, "events", "--since", since, "--until", "0s", "--filter", "type=image", "--filter", "event=tag",
		"--format", `{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}} {{index .Actor.Attributes "org.example.app"}}`)
	want := "image tag " + id + " example.com/app:2 yes\n" +
		"image tag " + id + " myapp:latest yes\n" +
		"image tag " + id + " localhost:5000/team/app:v1 yes\n"
	if out != want {
		t.Errorf("docker events --filter type=image --filter event=tag:\n%s\nwant\n%s", out, want)
	}
	out = s.ok(t, "events", "--since", since, "--until", "0s", "--filter", "image=myapp", "--format", "{{.Action}}")
	if out != "tag\n" {
		t.Errorf("docker events --filter image=myapp: %q, want the tag", out)
	}
	s.stop(t)
}
