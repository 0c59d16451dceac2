// Command misbehave is a test fixture: the netfile network stage, which misbehaves in
// ConfigureNetwork, after leasing its address, for containers whose name starts with
// "fault" (mode from the config: sigkill, sleep, panic, fail-undofail), and which speaks
// the plugin protocol version in $FIXTURE_PROTOCOL when set. $FIXTURE_CHANNEL=old makes it
// a plugin without the fd channel, =silent one that lists the channel but does not serve it.
package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/examples/plugins/netfile"
	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

type config struct {
	Mode    string         `json:"mode"`
	Netfile netfile.Config `json:"netfile"`
}

type fixture struct {
	*netfile.Net
	cfg *config
	log hclog.Logger
}

func (f *fixture) Setup(ctx context.Context, log hclog.Logger) error {
	f.log = log
	f.Net.Config = f.cfg.Netfile
	return f.Net.Setup(ctx, log)
}

func (f *fixture) ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error) {
	out, err := f.Net.ConfigureNetwork(ctx, rec)
	if err != nil || !strings.HasPrefix(rec.Name, "fault") {
		return out, err
	}
	f.log.Info("misbehaving", "mode", f.cfg.Mode, "container", rec.ID)
	switch f.cfg.Mode {
	case "sigkill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "sleep":
		time.Sleep(time.Hour)
	case "panic":
		panic("fixture: boom in ConfigureNetwork")
	case "fail-undofail":
		return nil, errdefs.Unavailable(errors.New("fixture: network backend unreachable"))
	}
	return out, nil
}

func (f *fixture) Undo(ctx context.Context, rec *spec.Record) error {
	if f.cfg.Mode == "fail-undofail" {
		marker := filepath.Join(f.cfg.Netfile.Dir, "undo-failed-"+rec.ID)
		if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
			os.WriteFile(marker, nil, 0o600)
			return errdefs.Unavailable(errors.New("fixture: undo backend unreachable"))
		}
	}
	return f.Net.Undo(ctx, rec)
}

func main() {
	switch os.Getenv("FIXTURE_CHANNEL") {
	case "old":
		// As a plugin built before the fd channel: it neither lists nor serves it.
		var caps []string
		for _, c := range hostapi.Capabilities {
			if c != hostapi.CapFDChannel {
				caps = append(caps, c)
			}
		}
		hostapi.Capabilities = caps
		os.Unsetenv(hostapi.ChannelFDEnv)
	case "silent":
		// It lists the channel but does not serve it.
		os.Unsetenv(hostapi.ChannelFDEnv)
	}
	cfg := &config{Netfile: netfile.DefaultConfig()}
	p := sdk.Plugin{Name: "misbehave", Version: "0.0.1", Network: &fixture{Net: netfile.New(), cfg: cfg}, Config: cfg}
	if v, _ := strconv.Atoi(os.Getenv("FIXTURE_PROTOCOL")); v != 0 && v != hostapi.ProtocolVersion {
		log := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true})
		sc := sdk.ServeConfig(p, log)
		sc.VersionedPlugins = map[int]plugin.PluginSet{v: {hostapi.PluginKey: sdk.GRPCPlugin(p, log)}}
		plugin.Serve(sc)
		return
	}
	sdk.Serve(p)
}
