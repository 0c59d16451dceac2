package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cli runs slipway with the given root and returns its stdout; it fails the test on a
// non-zero exit.
func cli(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, err := cliErr(root, nil, args...)
	if err != nil {
		t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cliErr(root string, env []string, args ...string) (string, error) {
	cmd := exec.Command("slipway", append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// killAt runs slipway with the pause hook set to point, waits until it pauses there, and
// kills it with SIGKILL.
func killAt(t *testing.T, root, point string, args ...string) {
	t.Helper()
	cmd := exec.Command("slipway", append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), "SLIPWAY_TEST_PAUSE="+point)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	paused := make(chan string, 1)
	go func() {
		var seen []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.HasPrefix(sc.Text(), "PAUSED ") {
				paused <- ""
				return
			}
		}
		paused <- strings.Join(seen, "\n")
	}()
	select {
	case out := <-paused:
		if out != "" {
			cmd.Wait()
			t.Fatalf("slipway %v ended without pausing at %s:\n%s", args, point, out)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("slipway %v did not reach %s in time", args, point)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// leftovers describes what is on the host for root beyond want containers: container
// directories, mounts and container snapshots.
func leftovers(t *testing.T, root string, baseSnapshots int, want int) []string {
	t.Helper()
	var bad []string
	ents, _ := os.ReadDir(filepath.Join(root, "containers"))
	if len(ents) != want {
		bad = append(bad, "container directories: "+names(ents))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, root) {
			bad = append(bad, "mount: "+l)
		}
	}
	if snaps := countSnapshots(root); snaps != baseSnapshots+want {
		bad = append(bad, "snapshots: "+strings.Join(listSnapshots(root), ", "))
	}
	if m, _ := os.ReadDir(filepath.Join(root, "snapshots", "mounts")); len(m) != 0 {
		bad = append(bad, "mount points: "+names(m))
	}
	return bad
}

func names(ents []os.DirEntry) string {
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return strings.Join(n, ",")
}

// listSnapshots returns the snapshot directories of the snapshotter in use.
func listSnapshots(root string) []string {
	var out []string
	for _, d := range []string{"overlayfs", "native"} {
		ents, _ := os.ReadDir(filepath.Join(root, "snapshots", d, "snapshots"))
		for _, e := range ents {
			out = append(out, d+"/"+e.Name())
		}
	}
	return out
}

func countSnapshots(root string) int { return len(listSnapshots(root)) }

// countVolumes counts the volume directories below root.
func countVolumes(root string) int {
	ents, _ := os.ReadDir(filepath.Join(root, "volumes"))
	return len(ents)
}

// TestCrashAtEveryStage kills a real `slipway create` and `slipway rm` with SIGKILL at every
// stage boundary and checks that `slipway recover` leaves nothing behind: no directory,
// snapshot, mount, name, lease or record, and that a container whose record was committed
// survives.
func TestCrashAtEveryStage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for overlayfs snapshots and mounts (CI runs it as root)")
	}
	img := filepath.Join(t.TempDir(), "app.tar")
	if err := writeImage(img); err != nil {
		t.Fatal(err)
	}
	newRoot := func(t *testing.T) (string, int) {
		root := t.TempDir()
		cli(t, root, "image", "load", "-i", img)
		// One create and remove unpacks the image's layers and init layer: the baseline.
		id := strings.TrimSpace(cli(t, root, "create", testImage))
		cli(t, root, "rm", id)
		return root, countSnapshots(root)
	}
	// A named volume the run makes, an anonymous one and a working directory made in the
	// root filesystem: the mkdir stage's effects too must be undone after a crash.
	createArgs := []string{"create", "--name", "victim", "--network", "slipway", "--ip", "172.30.0.50",
		"-v", "crashvol:/data", "-v", "/anon", "-w", "/work/dir", testImage}
	// dropVolumes removes what a removal without -v keeps: the named volume and the now
	// unused anonymous ones.
	dropVolumes := func(t *testing.T, root string) {
		cli(t, root, "volume", "rm", "crashvol")
		cli(t, root, "volume", "prune")
	}

	createPoints := []struct {
		point    string
		survives bool
	}{
		{"create:before:register#1", false}, {"create:after:register#1", false},
		{"create:before:security", false}, {"create:after:security", false},
		{"create:before:network", false}, {"create:after:network", false},
		{"create:before:layer", false}, {"create:after:layer", false},
		{"create:before:mkdir", false}, {"create:after:mkdir", false},
		{"create:before:register#2", false}, {"create:after:register#2", true},
	}
	for _, tc := range createPoints {
		t.Run(strings.ReplaceAll(tc.point, ":", "_"), func(t *testing.T) {
			root, base := newRoot(t)
			killAt(t, root, tc.point, createArgs...)
			out := cli(t, root, "recover")
			if !tc.survives && !strings.Contains(out, "recovered ") {
				t.Errorf("recover did not report the half-done run: %q", out)
			}
			want := 0
			if tc.survives {
				want = 1
			}
			ids := strings.Fields(cli(t, root, "ls", "-a", "-q"))
			if len(ids) != want {
				t.Fatalf("after recover: %d containers (%v), want %d", len(ids), ids, want)
			}
			if bad := leftovers(t, root, base, want); len(bad) > 0 {
				t.Fatalf("left behind after recover:\n%s", strings.Join(bad, "\n"))
			}
			if got := countVolumes(root); got != 2*want {
				t.Fatalf("volumes after recover: %d, want %d (a rolled-back create removes the volumes it made)", got, 2*want)
			}
			if tc.survives {
				cli(t, root, "inspect", "victim")
				cli(t, root, "rm", "-v", "victim")
				cli(t, root, "volume", "rm", "crashvol")
			}
			// Name, address and volume name are free again.
			id := strings.TrimSpace(cli(t, root, createArgs...))
			cli(t, root, "rm", "-v", id)
			cli(t, root, "volume", "rm", "crashvol")
			if got := countVolumes(root); got != 0 {
				t.Fatalf("volumes after rm -v and volume rm: %d", got)
			}
			if bad := leftovers(t, root, base, 0); len(bad) > 0 {
				t.Fatalf("left behind after a clean create and remove:\n%s", strings.Join(bad, "\n"))
			}
		})
	}

	for _, st := range []string{"register", "mkdir", "layer", "network", "security"} {
		point := "remove:undo:" + st
		t.Run(strings.ReplaceAll(point, ":", "_"), func(t *testing.T) {
			root, base := newRoot(t)
			cli(t, root, createArgs...)
			cli(t, root, "mount", "victim") // removal must unmount, also after a crash
			killAt(t, root, point, "rm", "victim")
			cli(t, root, "recover")
			if ids := strings.Fields(cli(t, root, "ls", "-a", "-q")); len(ids) != 0 {
				t.Fatalf("after recover: containers %v, want none", ids)
			}
			if bad := leftovers(t, root, base, 0); len(bad) > 0 {
				t.Fatalf("left behind after recover:\n%s", strings.Join(bad, "\n"))
			}
			// rm without -v keeps both volumes, also when it had to be finished by recover.
			if got := countVolumes(root); got != 2 {
				t.Fatalf("volumes after a recovered rm: %d, want the named and the anonymous one", got)
			}
			dropVolumes(t, root)
			if got := countVolumes(root); got != 0 {
				t.Fatalf("volumes after volume rm and prune: %d", got)
			}
			id := strings.TrimSpace(cli(t, root, createArgs...))
			cli(t, root, "rm", "-v", id)
			cli(t, root, "volume", "rm", "crashvol")
		})
	}
}
