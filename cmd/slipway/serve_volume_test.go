package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeDockerVolumes drives the volume endpoints with the real docker CLI: volume
// create, ls (and its filters), inspect, rm, prune; a named volume made by docker create -v;
// docker rm -v removing the anonymous volume of a container. It also checks that docker ps
// lists a link's path among the names of its target, as dockerd does.
func TestServeDockerVolumes(t *testing.T) {
	start := time.Now()
	s, _ := dockerServer(t)

	out := s.ok(t, "volume", "create", "--label", "tier=db", "data")
	match(t, "volume create", out, `^data\n$`)
	out = s.ok(t, "volume", "create")
	match(t, "volume create (anonymous)", out, `^[0-9a-f]{64}\n$`)
	anon := strings.TrimSpace(out)
	out = s.ok(t, "volume", "ls")
	match(t, "volume ls", out, `(?m)^DRIVER\s+VOLUME NAME$`)
	match(t, "volume ls", out, `(?m)^local\s+data$`)
	match(t, "volume ls", out, `(?m)^local\s+`+anon+`$`)
	out = s.ok(t, "volume", "ls", "-q", "--filter", "label=tier=db")
	if out != "data\n" {
		t.Errorf("volume ls --filter label=tier=db: %q, want data", out)
	}
	out = s.ok(t, "volume", "inspect", "data")
	var vols []map[string]any
	if err := json.Unmarshal([]byte(out), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume inspect data: %v %q", err, out)
	}
	if v := vols[0]; v["Name"] != "data" || v["Driver"] != "local" || v["Scope"] != "local" ||
		v["Mountpoint"] != filepath.Join(s.root, "volumes", "data", "_data") || v["Labels"].(map[string]any)["tier"] != "db" {
		t.Errorf("volume inspect data: %v", v)
	}
	s.fails(t, 1, `Error response from daemon: get nosuch: no such volume`, "volume", "inspect", "nosuch")
	s.fails(t, 1, `^Error response from daemon: create nfs: error looking up volume plugin nfsplugin: plugin "nfsplugin" not found\n$`, "volume", "create", "-d", "nfsplugin", "nfs")

	// docker create -v named:/data makes the volume; the container uses it.
	id := strings.TrimSpace(s.ok(t, "create", "--name", "db", "-v", "named:/data", "-v", "/scratch", testImage))
	var scratch string
	var mounts []struct{ Name, Destination string }
	if err := json.Unmarshal([]byte(s.ok(t, "inspect", "--format", "{{json .Mounts}}", "db")), &mounts); err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.Destination == "/scratch" {
			scratch = m.Name
		}
	}
	if len(scratch) != 64 {
		t.Fatalf("db's mounts %+v: no anonymous volume at /scratch", mounts)
	}
	out = s.ok(t, "volume", "ls", "--format", "{{.Name}}")
	match(t, "volume ls after create -v", out, `(?m)^named$`)
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("volume ls after create -v: %q, want data, the anonymous one, named and db's anonymous one", out)
	}
	out = s.ok(t, "volume", "ls", "-q", "--filter", "dangling=true")
	if strings.Contains(out, "named") || !strings.Contains(out, "data") {
		t.Errorf("volume ls --filter dangling=true: %q, want data but not named", out)
	}
	s.fails(t, 1, `^Error response from daemon: remove named: volume is in use - \[`+id+`\]\n$`, "volume", "rm", "named")
	s.fails(t, 1, `volume is in use`, "volume", "rm", "-f", "named")
	s.fails(t, 1, `Error response from daemon: get nosuch: no such volume`, "volume", "rm", "nosuch")
	s.ok(t, "volume", "rm", "-f", "nosuch") // force: a missing volume is no error

	// Links: the target lists the link's path among its names (shown without --no-trunc's
	// truncation; the default table shows its own name only, as with dockerd).
	s.ok(t, "create", "--name", "web", "--link", "db:pg", testImage)
	out = s.ok(t, "ps", "-a", "--no-trunc", "--filter", "name=^db$", "--format", "{{.Names}}")
	if out != "db,web/pg\n" {
		t.Errorf("ps --no-trunc names of db: %q, want db,web/pg", out)
	}
	out = s.ok(t, "ps", "-a", "--filter", "name=^db$", "--format", "{{.Names}}")
	if out != "db\n" {
		t.Errorf("ps names of db: %q, want db", out)
	}
	s.ok(t, "rm", "web")

	// docker rm -v removes db's anonymous volume, not the named one.
	s.ok(t, "rm", "-v", "db")
	out = s.ok(t, "volume", "ls", "-q")
	if n := strings.Count(out, "\n"); n != 3 || !strings.Contains(out, "named\n") {
		t.Errorf("volume ls after rm -v: %q, want data, named and the first anonymous one", out)
	}

	// prune removes the anonymous volume only; --all the named ones too.
	out = s.ok(t, "volume", "prune", "-f")
	match(t, "volume prune", out, `(?s)^Deleted Volumes:\n`+anon+`\n\nTotal reclaimed space: 0B\n$`)
	out = s.ok(t, "volume", "prune", "-f", "--all")
	match(t, "volume prune --all", out, `(?s)^Deleted Volumes:\n(data\nnamed|named\ndata)\n\nTotal reclaimed space: 0B\n$`)
	out = s.ok(t, "volume", "rm", "-f", "data")
	if out != "data\n" {
		t.Errorf("volume rm -f of a removed volume: %q", out)
	}
	if out := s.ok(t, "volume", "ls", "-q"); out != "" {
		t.Errorf("volume ls at the end: %q", out)
	}

	// The volume events, as moby's volume store logs them: create and destroy with the
	// driver, whoever made or removed the volume (docker volume, docker create, rm -v,
	// prune), and prune's own event; none for what failed or changed nothing.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	since := fmt.Sprint(start.Add(-time.Second).Unix())
	out = s.ok(t, "events", "--since", since, "--until", "0s", "--filter", "type=volume",
		"--format", `{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "driver"}}{{index .Actor.Attributes "reclaimed"}}`)
	want := strings.Join([]string{
		"volume create data local",
		"volume create " + anon + " local",
		"volume create named local",
		"volume create " + scratch + " local",
		"volume destroy " + scratch + " local", // rm -v db
		"volume destroy " + anon + " local",
		"volume prune  0",
		"volume destroy data local",
		"volume destroy named local",
		"volume prune  0",
	}, "\n") + "\n"
	if out != want {
		t.Errorf("docker events --filter type=volume:\n%s\nwant\n%s", out, want)
	}
	out = s.ok(t, "events", "--since", since, "--until", "0s", "--filter", "volume=named", "--format", "{{.Action}} {{.Actor.ID}}")
	if out != "create named\ndestroy named\n" {
		t.Errorf("docker events --filter volume=named: %q", out)
	}
	s.stop(t)
}
