package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/api"
	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/plugins/host"
)

// defaultHost is where slipway serve listens unless --host says otherwise.
const defaultHost = "unix:///run/slipway.sock"

func (a *app) serveCmd() *cobra.Command {
	var host, group, metricsAddr string
	var shutdownTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve the Docker Engine API subset (create, list, inspect, remove; images; events) on a unix socket",
		Long: `Serve the Docker Engine API subset on a unix socket, so that the docker CLI and SDKs create
containers through Slipway: docker -H unix:///run/slipway.sock create ...

The socket is made with mode 0660 (group --group). On SIGTERM or SIGINT the server stops
accepting connections, lets the requests in flight finish, and closes the engine. Half-done
runs that a killed server left are finished at start-up.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := unixPath(host)
			if err != nil {
				return usageError{err}
			}
			gid := -1
			if group != "" {
				if gid, err = lookupGroup(group); err != nil {
					return usageError{err}
				}
			}
			return a.serve(cmd.Context(), path, gid, metricsAddr, shutdownTimeout)
		},
	}
	cmd.Flags().StringVarP(&host, "host", "H", defaultHost, "the socket to listen on (unix://PATH)")
	cmd.Flags().StringVar(&group, "group", "", "group (name or ID) that owns the socket; the caller's when empty")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (HOST:PORT or unix://PATH)")
	cmd.Flags().DurationVar(&shutdownTimeout, "shutdown-timeout", 2*time.Minute, "how long a shutdown waits for requests in flight")
	return cmd
}

// unixPath returns the socket path of a unix://PATH host.
func unixPath(host string) (string, error) {
	p, ok := strings.CutPrefix(host, "unix://")
	if !ok || p == "" {
		return "", fmt.Errorf("invalid --host %q: slipway serves on a unix socket only (unix:///PATH)", host)
	}
	return filepath.Clean(p), nil
}

func lookupGroup(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil && id >= 0 {
		return id, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("invalid --group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}

// listenUnix listens on path with mode 0660 and group gid (unchanged when negative). It
// refuses a socket that a live server answers on and removes a stale one.
func listenUnix(path string, gid int) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, errdefs.FailedPrecondition(fmt.Errorf("%s exists and is not a socket", path))
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errdefs.Unavailable(fmt.Errorf("socket %s is in use by another server", path))
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.Internal(fmt.Errorf("remove stale socket: %w", err))
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("create socket directory: %w", err))
	}
	// The socket is never more open than 0660, not even between bind and chmod.
	old := syscall.Umask(0o117)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("listen on %s: %w", path, err))
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, errdefs.Internal(fmt.Errorf("chmod socket: %w", err))
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, errdefs.Internal(fmt.Errorf("chown socket to group %d: %w", gid, err))
		}
	}
	return l, nil
}

// listenMetrics listens on HOST:PORT or unix://PATH.
func listenMetrics(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return listenUnix(filepath.Clean(p), -1)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("metrics address %q: %w", addr, err))
	}
	return l, nil
}

func (a *app) serve(ctx context.Context, path string, gid int, metricsAddr string, shutdownTimeout time.Duration) error {
	// Listen before opening the engine, so that a second server fails on the socket and
	// never touches the state root of the first.
	l, err := listenUnix(path, gid)
	if err != nil {
		return err
	}
	defer l.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	obs := newMetrics(reg)

	eng, err := a.openObserved(ctx, obs)
	if err != nil {
		return err
	}
	if rep := eng.OpenRecovery(); len(rep.Recovered) > 0 {
		a.log.Info("recovered half-done runs at start-up", "runs", len(rep.Recovered))
	}
	h := api.New(eng, a.log.Named("api"))
	srv := &http.Server{
		Handler:           promhttp.InstrumentHandlerCounter(obs.requests, h),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          a.log.StandardLogger(nil),
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()

	var msrv *http.Server
	if metricsAddr != "" {
		ml, err := listenMetrics(metricsAddr)
		if err != nil {
			srv.Close()
			eng.Close()
			return err
		}
		msrv = &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 30 * time.Second}
		go func() { errc <- msrv.Serve(ml) }()
		a.log.Info("serving metrics", "addr", ml.Addr().String())
	}
	a.log.Info("serving the Engine API", "socket", path, "api-version", api.DefaultVersion, "root", eng.Root())

	// SIGHUP re-reads the pipeline file and swaps it in (read-copy-update).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var serveErr error
wait:
	for {
		select {
		case <-hup:
			a.reload(ctx, eng)
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr = errdefs.Internal(fmt.Errorf("serve: %w", err))
			}
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	a.log.Info("shutting down: waiting for the requests in flight")
	h.CloseStreams()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Error("shutdown did not finish in time; closing connections", "error", err)
		srv.Close()
	}
	if msrv != nil {
		msrv.Close()
	}
	// Close waits for runs still in flight (a create whose client went away finishes or undoes).
	if err := eng.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	a.log.Info("stopped")
	return serveErr
}

// openObserved opens the engine as open does, with obs told about every stage and run.
func (a *app) openObserved(ctx context.Context, obs core.Observer) (*core.Engine, error) {
	o, err := a.options()
	if err != nil {
		return nil, err
	}
	o.Observer = obs
	e, err := core.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	a.pluginGC(ctx, e) // unreferenced plugin binaries go only at start-up
	return e, nil
}

// metrics is the engine's core.Observer for Prometheus.
type metrics struct {
	stage    *prometheus.HistogramVec
	runs     *prometheus.CounterVec
	runTime  *prometheus.HistogramVec
	undone   *prometheus.CounterVec
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slipway_stage_duration_seconds", Help: "Duration of each stage call, by stage, implementation and outcome.", Buckets: buckets,
		}, []string{"stage", "impl", "outcome"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_runs_total", Help: "Creates and removes, by outcome (ok or the error class).",
		}, []string{"op", "outcome"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slipway_run_duration_seconds", Help: "Duration of creates and removes.", Buckets: buckets,
		}, []string{"op"}),
		undone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_runs_undone_total", Help: "Runs that failed after an effect and were undone.",
		}, []string{"op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_api_requests_total", Help: "Engine API requests, by method and status code.",
		}, []string{"code", "method"}),
	}
	reg.MustRegister(m.stage, m.runs, m.runTime, m.undone, m.requests,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "slipway_plugin_restarts_total",
			Help: "Plugin processes launched to replace one that died, hung or was killed.",
		}, func() float64 { return float64(host.Restarts()) }))
	return m
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.ReplaceAll(errdefs.ClassOf(err).String(), " ", "_")
}

// StageDone implements core.Observer.
func (m *metrics) StageDone(st spec.Stage, impl string, d time.Duration, err error) {
	m.stage.WithLabelValues(string(st), impl, outcome(err)).Observe(d.Seconds())
}

// RunDone implements core.Observer.
func (m *metrics) RunDone(op string, d time.Duration, err error, undone bool) {
	m.runs.WithLabelValues(op, outcome(err)).Inc()
	m.runTime.WithLabelValues(op).Observe(d.Seconds())
	if undone {
		m.undone.WithLabelValues(op).Inc()
	}
}

var _ core.Observer = (*metrics)(nil)

// reload re-reads the pipeline file and swaps the engine's snapshot. A file that does not
// load, or a pipeline that does not build, leaves the running pipeline in force; runs in
// flight always finish on the snapshot they started with.
func (a *app) reload(ctx context.Context, eng *core.Engine) {
	if a.pipeline == "" {
		a.log.Warn("SIGHUP: no --pipeline file to re-read; the built-in default stays in force")
		return
	}
	p, plan, err := a.pipelineFrom(a.pipeline)
	if err != nil {
		a.log.Error("SIGHUP: the pipeline file does not load; the running pipeline stays in force", "pipeline", a.pipeline, "error", err)
		return
	}
	if err := saveConfigs(eng.Root(), plan); err != nil {
		a.log.Error("SIGHUP: cannot keep the new stage configurations; the running pipeline stays in force", "error", err)
		return
	}
	if err := eng.Reload(ctx, p); err != nil {
		a.log.Error("SIGHUP: the new pipeline does not build; the running pipeline stays in force", "pipeline", a.pipeline, "error", err)
		return
	}
	a.log.Info("SIGHUP: pipeline reloaded", "pipeline", a.pipeline)
}
