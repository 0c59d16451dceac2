package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestServeKilledAfterRemove kills `slipway serve` with SIGKILL right after it answered two
// removals, before its layer stage's reaper removed their snapshots (it waits for a pause of
// the stage), and checks that the next process removes them and nothing else, and that it
// removes the snapshots the killed server's layer stage had made ahead, but not the one the
// third container took.
func TestServeKilledAfterRemove(t *testing.T) {
	needServeRoot(t)
	s := startServer(t)
	ctx := context.Background()
	c := mobyClient(t, s)
	tar := filepath.Join(filepath.Dir(s.sock), "app.tar")
	if err := writeImage(tar); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := c.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, lr)
	lr.Close()
	// writeImage's two layers and the init layer.
	const base = 3
	var ids []string
	dirs := map[string]string{} // each container's snapshot directory
	for i := range 3 {
		if i == 2 {
			// The second create of the image started the layer stage's pool of snapshots
			// made ahead: once it is filled, the third takes one of them.
			deadline := time.Now().Add(10 * time.Second)
			for countSnapshots(s.root) < base+2+32 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: testImage}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cr.ID)
		insp, err := c.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dirs[cr.ID] = insp.Container.GraphDriver.Data["Dir"] // native
		if u := insp.Container.GraphDriver.Data["UpperDir"]; u != "" {
			dirs[cr.ID] = filepath.Dir(u)
		}
	}
	for _, id := range ids[:2] {
		if _, err := c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	removed := time.Now()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.done <- nil // for the cleanup

	var noted []string
	for _, drv := range []string{"overlayfs", "native"} {
		data, _ := os.ReadFile(filepath.Join(s.root, "snapshots", drv, "removing"))
		noted = append(noted, strings.Fields(string(data))...)
	}
	for _, id := range ids {
		if _, err := os.Stat(dirs[id]); err != nil || len(noted) != 2 {
			t.Fatalf("killed %s after the removals, the snapshot of %s was already gone (%v; noted %v): the test did not kill the server before its reaper ran", time.Since(removed), id, err, noted)
		}
	}
	if n := countSnapshots(s.root); n < base+3+16 {
		t.Fatalf("%d snapshots when the server was killed, want its pool's besides the 3 containers' and %d shared ones", n, base)
	}

	// The next process (here a CLI command, which opens the engine and closes it) finishes
	// the removals and keeps the third container.
	if out := strings.Fields(cli(t, s.root, "ls", "-a", "-q")); len(out) != 1 || !strings.HasPrefix(ids[2], out[0]) {
		t.Fatalf("containers after the restart: %v, want %s", out, ids[2])
	}
	for i, id := range ids {
		if _, err := os.Stat(dirs[id]); (err == nil) != (i == 2) {
			t.Errorf("snapshot directory of container %d after the restart: %v", i, err)
		}
	}
	if bad := leftovers(t, s.root, base, 1); len(bad) > 0 {
		t.Fatalf("left behind after the restart:\n%s", strings.Join(bad, "\n"))
	}
	for _, drv := range []string{"overlayfs", "native"} {
		if data, _ := os.ReadFile(filepath.Join(s.root, "snapshots", drv, "removing")); len(data) != 0 {
			t.Errorf("%s still notes %q", drv, data)
		}
	}
	cli(t, s.root, "rm", ids[2])
	if bad := leftovers(t, s.root, base, 0); len(bad) > 0 {
		t.Fatalf("left behind after the last removal:\n%s", strings.Join(bad, "\n"))
	}
}
