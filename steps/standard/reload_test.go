package standard_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/plugins/host"
	"github.com/slipwayhq/slipway/plugins/plugintest"
	"github.com/slipwayhq/slipway/steps/standard"
)

// TestReloadRace reloads the pipeline in a loop, switching the network stage between the
// built-in IPAM and the netfile plugin and back, while 8 goroutines create and remove
// containers. No run may fail because of a reload, every container must be removable
// afterwards with the implementation that created it, the plugin's process must stop once no
// run uses it, and nothing may be left: no container, directory, snapshot, lease or plugin
// process.
func TestReloadRace(t *testing.T) {
	needRoot(t)
	t.Cleanup(plugintest.Cleanup)
	builtin := standard.Pipeline(standard.Config{NoSync: true})
	e := open(t, builtin, true)
	leases := filepath.Join(e.Root(), "netfile")
	cfg, _ := json.Marshal(map[string]any{"dir": leases, "network": "bridge", "subnet": "10.99.0.0/16", "no_sync": true})
	ref := plugintest.Install(t, filepath.Join(e.Root(), "plugins"), "github.com/slipwayhq/slipway/examples/plugins/netfile/cmd/netfile", "netfile", cfg)
	withPlugin := builtin.With(host.Impl(spec.StageNetwork, ref))

	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kept []string
	var creates, failures atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e.Create(ctx, request("", ""))
				if err != nil {
					failures.Add(1)
					t.Errorf("create during reloads: %v", err)
					return
				}
				creates.Add(1)
				if i%3 == 0 { // keep some, to remove after the pipeline moved on
					mu.Lock()
					kept = append(kept, r.ID)
					mu.Unlock()
					continue
				}
				if err := e.Remove(ctx, r.ID, core.RemoveOptions{}); err != nil {
					failures.Add(1)
					t.Errorf("remove during reloads: %v", err)
					return
				}
			}
		}()
	}
	var reloads int
	for i := 0; i < 30 && failures.Load() == 0; i++ {
		p := builtin
		if i%2 == 0 {
			p = &withPlugin
		}
		if err := e.Reload(ctx, p); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		reloads++
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reloads, %d creates, %d containers kept for later removal", reloads, creates.Load(), len(kept))
	// The last reload chose the built-in: once no run uses the plugin's snapshot, its process
	// stops.
	if err := e.Reload(ctx, builtin); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(plugintest.Processes(ref.Path)) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if procs := plugintest.Processes(ref.Path); len(procs) != 0 {
		t.Errorf("plugin processes of retired snapshots still run: %v", procs)
	}

	// Whatever the pipeline now, every container is removed with what created it.
	recs, _ := e.List(ctx, core.ListOptions{All: true})
	plugins, builtins := 0, 0
	for _, c := range recs {
		rec, err := e.Record(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Implementations[spec.StageNetwork] == host.ImplName("netfile", ref.SHA256) {
			plugins++
		} else {
			builtins++
		}
		if err := e.Remove(ctx, c.ID, core.RemoveOptions{}); err != nil {
			t.Errorf("remove %s after the reloads: %v", c.ID, err)
		}
	}
	if plugins == 0 || builtins == 0 {
		t.Errorf("kept containers: %d made with the plugin, %d with the built-in; want both", plugins, builtins)
	}
	assertClean(t, e, 3)
	data, err := os.ReadFile(filepath.Join(leases, "leases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Leases map[string]any `json:"leases"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatalf("leases.json: %v\n%s", err, data)
	}
	if len(state.Leases) != 0 {
		t.Errorf("netfile leases left: %s", data)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if procs := plugintest.Processes(ref.Path); len(procs) != 0 {
		t.Errorf("plugin processes left after Close: %v", procs)
	}
}
