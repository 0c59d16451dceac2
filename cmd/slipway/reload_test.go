package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const bridgeOnly = `stage "network" {
  use = "ipam"
  config {
    network "bridge" {
      subnet  = "%s"
      gateway = "%s"
    }
  }
}
`

// TestServeReload sends SIGHUP to a real slipway serve after changing its pipeline file: new
// creates use the new pipeline, a container of the old one is removed with the old one, and
// a broken file leaves the running pipeline in force.
func TestServeReload(t *testing.T) {
	needServeRoot(t)
	dir := varTemp(t)
	pipeline := filepath.Join(dir, "pipeline.hcl")
	write := func(content string) {
		if err := os.WriteFile(pipeline, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(bridgeOnly, "10.61.0.0/16", "10.61.0.1"))
	s := startServer(t, "--pipeline", pipeline)
	img := filepath.Join(dir, "app.tar")
	if err := writeImage(img); err != nil {
		t.Fatal(err)
	}
	s.ok(t, "load", "-i", img)
	s.ok(t, "create", "--name", "old", testImage)
	match(t, "address before the reload", s.ok(t, "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "old"), `^10\.61\.0\.\d+\n$`)

	hup := func() {
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // the reload is asynchronous to the signal
	}
	write(fmt.Sprintf(bridgeOnly, "10.62.0.0/16", "10.62.0.1"))
	hup()
	s.ok(t, "create", "--name", "new", testImage)
	match(t, "address after the reload", s.ok(t, "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "new"), `^10\.62\.0\.\d+\n$`)

	// A broken file: the server logs it and keeps the pipeline it has.
	write("stage \"netwerk\" {\n")
	hup()
	s.ok(t, "create", "--name", "after-broken", testImage)
	match(t, "address after a broken reload", s.ok(t, "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "after-broken"), `^10\.62\.0\.\d+\n$`)

	// The container of the first pipeline goes with the implementation that made it.
	s.ok(t, "rm", "old", "new", "after-broken")
	if out := s.ok(t, "ps", "-aq"); out != "" {
		t.Errorf("containers left: %q", out)
	}
	s.stop(t)
	log := s.stderr.String()
	for _, want := range []string{"SIGHUP: pipeline reloaded", "SIGHUP: the pipeline file does not load"} {
		if !strings.Contains(log, want) {
			t.Errorf("server log lacks %q", want)
		}
	}
}
