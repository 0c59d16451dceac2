// Package host runs Slipway's out-of-process stage plugins: it launches a plugin binary with
// go-plugin, supervises it, and hands the engine a core.Impl whose stage value calls the
// plugin, so the engine cannot tell a plugin from a built-in stage.
//
// Launch: go-plugin in gRPC-only mode with AutoMTLS, SkipHostEnv (the plugin sees only the
// handshake variables and PluginRef.Env), a fresh SecureConfig and SHA-256 per launch on top
// of the host's own check of the binary against PluginRef.SHA256 (a mismatch is refused,
// FailedPrecondition). Each plugin runs in its own process group with Pdeathsig SIGKILL,
// set from one OS thread that lives as long as the engine (Pdeathsig fires when the thread
// that forked the child ends, not the process), so no plugin outlives the engine even when
// the engine is SIGKILLed. The plugin's hclog output is forwarded to the host logger under
// "plugin.NAME" with its level and fields; what it writes to stdout and stderr after the
// handshake is logged too, and the raw stderr tail is kept to explain a crash.
//
// After the launch the host asks the plugin to Describe itself, refuses one that lacks a
// required capability or does not serve the stage, and Configures it with PluginRef.Config.
//
// Transport: the host also hands every plugin the control socket of a private fd channel
// (descriptor 3, see hostapi.Channel). When the plugin lists hostapi.CapFDChannel and says
// on the socket that it serves it, the stage calls go over the channel, a socket pair per
// call in flight, which costs a fifth of a gRPC call; Describe, Configure and the host
// callbacks stay on gRPC. A plugin built before the channel, or one that lists it without
// serving it (the host waits a second, warns and goes on), gets its calls over gRPC, as does
// every plugin with PluginRef.GRPCOnly, or all of them with SLIPWAY_PLUGIN_TRANSPORT=grpc in
// the engine's environment (TransportEnv). The "plugin started" debug line says which.
//
// Calls: every call has a deadline (PluginRef.Timeout, 30 s by default; an undo gets the
// shorter of it and the engine's undo deadline). A stage's own error comes back with its
// class and message unchanged. A plugin that dies, panics or breaks the connection mid-call,
// or does not answer before the deadline (it is then killed with its process group), makes
// the call fail with an Unavailable error naming the plugin (and quoting the panic, if
// any); the engine undoes the run, and the next call starts the plugin again.
//
// Host callbacks: a stage made by Impl (or NewWithEnv) offers the plugin, during each of
// its calls, read access to env.Host and env.Images and warnings appended to the call's
// output (see hostapi's Host service); one made by New offers none.
//
// Processes are shared: every Impl of the same binary and config uses one process, which is
// stopped when the last stage value using it is closed (the engine closes them in Close).
// Shutdown stops them all.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/hostapi"
)

// Defaults for PluginRef.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultStartTimeout = 10 * time.Second
)

// PluginRef names a plugin binary and how to run it for one stage.
type PluginRef struct {
	// Name is the plugin's name, as installed.
	Name string
	// Path is the binary; normally Store.Path(Name, SHA256).
	Path string
	// SHA256 is the expected hex digest of the binary ("sha256:" prefix allowed). Required.
	SHA256 string
	// Config is the plugin's config, a JSON object; nil means {}.
	Config json.RawMessage
	// Timeout bounds each call of the stage; DefaultTimeout when zero.
	Timeout time.Duration
	// StartTimeout bounds a launch up to the handshake; DefaultStartTimeout when zero.
	StartTimeout time.Duration
	// Env is added to the plugin's otherwise empty environment ("KEY=value").
	Env []string
	// GRPCOnly keeps the stage calls on go-plugin's gRPC connection even when the plugin
	// serves the fd channel (hostapi.CapFDChannel), which is faster: for comparing the two
	// and for debugging with gRPC tools.
	GRPCOnly bool
}

// ImplName is the implementation name recorded in containers for a plugin:
// "plugin:NAME@sha256:HEX", which names the exact binary.
func ImplName(name, sha string) string {
	return "plugin:" + name + "@sha256:" + strings.TrimPrefix(sha, "sha256:")
}

var implNameRE = regexp.MustCompile(`^plugin:([a-z0-9][a-z0-9_.-]*)@sha256:([0-9a-f]{64})$`)

// ParseImplName is the inverse of ImplName; ok is false for a name that is not a plugin's.
func ParseImplName(s string) (name, sha string, ok bool) {
	m := implNameRE.FindStringSubmatch(s)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

func (r PluginRef) digest() string { return strings.TrimPrefix(strings.ToLower(r.SHA256), "sha256:") }

func (r PluginRef) check() error {
	if !nameRE.MatchString(r.Name) {
		return errdefs.InvalidArgument(fmt.Errorf("plugin name %q: only [a-z0-9][a-z0-9_.-] are allowed", r.Name))
	}
	if r.Path == "" {
		return errdefs.InvalidArgument(fmt.Errorf("plugin %s: no path", r.Name))
	}
	if !digestRE.MatchString(r.digest()) {
		return errdefs.InvalidArgument(fmt.Errorf("plugin %s: expected sha256 %q is not 64 hex digits", r.Name, r.SHA256))
	}
	if len(r.Config) > 0 && !json.Valid(r.Config) {
		return errdefs.InvalidArgument(fmt.Errorf("plugin %s: config is not valid JSON", r.Name))
	}
	return nil
}

// Impl returns the implementation of stage st by the plugin p. Its New launches the plugin
// (or reuses the process already running it with the same config), checks that it serves
// st, and returns a value implementing the stage's core interface and core.Closer.
func Impl(st spec.Stage, p PluginRef) core.Impl {
	return core.Impl{Stage: st, Name: ImplName(p.Name, p.digest()), New: func(ctx context.Context, env core.Env) (any, error) {
		return NewWithEnv(ctx, st, p, env)
	}}
}

// CheckStep returns a check step served by the plugin p.
func CheckStep(name string, before, after spec.Stage, p PluginRef) core.CheckStep {
	return core.CheckStep{Name: name, Before: before, After: after, New: func(ctx context.Context, env core.Env) (core.Checker, error) {
		v, err := newStage(ctx, hostapi.StageCheck, p, env)
		if err != nil {
			return nil, err
		}
		return v.(core.Checker), nil
	}}
}

// New launches (or reuses) the plugin p and returns its stage st, without host callbacks
// (see NewWithEnv).
func New(ctx context.Context, st spec.Stage, p PluginRef, log hclog.Logger) (any, error) {
	return NewWithEnv(ctx, st, p, core.Env{Logger: log})
}

// NewWithEnv launches (or reuses) the plugin p and returns its stage st, as Impl's New
// does: the plugin's host callbacks during a call read env.Host and env.Images (nil ones are
// not offered) and its warnings go to the call's output.
func NewWithEnv(ctx context.Context, st spec.Stage, p PluginRef, env core.Env) (any, error) {
	if !st.Valid() {
		return nil, errdefs.InvalidArgument(fmt.Errorf("unknown stage %q", st))
	}
	return newStage(ctx, string(st), p, env)
}

func newStage(ctx context.Context, stage string, p PluginRef, env core.Env) (any, error) {
	log := env.Logger
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.StartTimeout <= 0 {
		p.StartTimeout = DefaultStartTimeout
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	pr := pool.acquire(p, log)
	inst, err := pr.get(ctx)
	if err != nil {
		pr.release()
		return nil, err
	}
	if !inst.desc.Serves(stage) {
		pr.release()
		return nil, errdefs.FailedPrecondition(fmt.Errorf("plugin %s %s does not serve the %s stage; it serves: %s",
			p.Name, inst.desc.Version, stage, strings.Join(inst.desc.Stages, ", ")))
	}
	c := &caller{proc: pr, timeout: p.Timeout}
	if env.Host != nil || env.Images != nil {
		c.env = &hostapi.HostEnv{Host: env.Host, Images: env.Images}
	}
	cl := &closer{proc: pr}
	if stage == hostapi.StageCheck {
		return checkAdapter{hostapi.CheckView(c), cl}, nil
	}
	v, err := hostapi.StageView(spec.Stage(stage), c)
	if err != nil {
		pr.release()
		return nil, err
	}
	switch st := spec.Stage(stage); st {
	case spec.StageVerify:
		return verifyAdapter{v.(core.Verifier), cl}, nil
	case spec.StageImage:
		return imageAdapter{v.(core.ImageResolver), cl}, nil
	case spec.StageMerge:
		return mergeAdapter{v.(core.Merger), cl}, nil
	case spec.StageSecurity:
		return securityAdapter{v.(core.Securer), cl}, nil
	case spec.StageNetwork:
		return networkAdapter{v.(core.Networker), cl}, nil
	case spec.StageLayer:
		return layerAdapter{v.(core.Layerer), v.(core.Mounter), cl}, nil
	case spec.StageMkdir:
		return mkdirAdapter{v.(core.DirMaker), cl}, nil
	default:
		return registerAdapter{v.(core.Registrar), cl}, nil
	}
}

type closer struct {
	proc *proc
	once sync.Once
}

// Close stops using the plugin; the process stops when no stage uses it any more.
func (c *closer) Close() error {
	c.once.Do(c.proc.release)
	return nil
}

type verifyAdapter struct {
	core.Verifier
	*closer
}
type imageAdapter struct {
	core.ImageResolver
	*closer
}
type mergeAdapter struct {
	core.Merger
	*closer
}
type securityAdapter struct {
	core.Securer
	*closer
}
type networkAdapter struct {
	core.Networker
	*closer
}

// layerAdapter is a layer stage plugin; it is a core.Mounter too, and a plugin whose stage
// cannot mount answers Mount with a FailedPrecondition that says so.
type layerAdapter struct {
	core.Layerer
	core.Mounter
	*closer
}
type mkdirAdapter struct {
	core.DirMaker
	*closer
}
type registerAdapter struct {
	core.Registrar
	*closer
}
type checkAdapter struct {
	core.Checker
	*closer
}

// caller runs calls for one stage against the plugin's live process.
type caller struct {
	proc    *proc
	timeout time.Duration
	env     *hostapi.HostEnv // what host callbacks offer; nil: none
}

func (c *caller) Call(ctx context.Context, method string, f func(ctx context.Context, cl *hostapi.Client) error) error {
	name := c.proc.ref.Name
	inst, err := c.proc.get(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.env != nil {
		cctx = hostapi.WithHostEnv(cctx, *c.env)
	}
	err = f(cctx, inst.api)
	if err == nil {
		return nil
	}
	var te *hostapi.TransportError
	if !errors.As(err, &te) {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// An encoding step gave up; treat as the deadline below.
		} else {
			return err // the stage's own error, class and message unchanged
		}
	}
	// The server ends a stream whose propagated deadline passed, which can reach us a hair
	// before our own timer fires: a failure at the deadline is the deadline.
	dl, _ := cctx.Deadline()
	timedOut := cctx.Err() != nil || (te != nil && te.Code == codes.DeadlineExceeded) || time.Until(dl) < 50*time.Millisecond
	switch {
	case ctx.Err() != nil:
		// The caller gave up (or its own deadline passed); the plugin is not at fault.
		if errors.Is(ctx.Err(), context.Canceled) {
			return errdefs.Canceled(fmt.Errorf("plugin %s: %s: %w", name, method, ctx.Err()))
		}
		return errdefs.Unavailable(fmt.Errorf("plugin %s: %s: %w", name, method, ctx.Err()))
	case timedOut:
		c.proc.drop(inst, true)
		return errdefs.Unavailable(fmt.Errorf("plugin %s did not answer %s within %s; killed it (pid %d), it restarts on the next call",
			name, method, c.timeout, inst.pid))
	case te != nil && te.Code == codes.Unimplemented:
		return errdefs.FailedPrecondition(fmt.Errorf("plugin %s does not serve %s: %s", name, method, te.Message))
	}
	// The process died or the connection broke: give the process a moment to be reaped, so
	// that its stderr (a panic) is read, then make sure it is gone.
	exited := false
	select {
	case <-inst.api.Done():
		exited = true
	case <-time.After(2 * time.Second):
	}
	c.proc.drop(inst, true)
	why := err.Error()
	if te != nil {
		why = te.Message
	}
	if p := inst.stderr.panicLine(); p != "" {
		why = p
	} else if exited {
		why = "the plugin process exited (" + why + ")"
	}
	return errdefs.Unavailable(fmt.Errorf("plugin %s failed during %s: %s; it restarts on the next call", name, method, why))
}

// pool holds the plugin processes by binary and config.
var pool = &procPool{procs: map[string]*proc{}}

type procPool struct {
	mu    sync.Mutex
	procs map[string]*proc
}

func procKey(p PluginRef) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%t\x00", p.Name, p.Path, p.digest(), p.Config, strings.Join(p.Env, "\x00"), p.GRPCOnly)
	return hex.EncodeToString(h.Sum(nil))
}

func (pp *procPool) acquire(p PluginRef, log hclog.Logger) *proc {
	key := procKey(p)
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pr := pp.procs[key]
	if pr == nil {
		pr = &proc{key: key, ref: p, log: log.ResetNamed("plugin." + p.Name)}
		pp.procs[key] = pr
	}
	pr.refs++
	return pr
}

// Shutdown stops every plugin process this package started and forgets them; stage values
// still held fail with Unavailable afterwards. Engines close their stages themselves; this
// is for a process that exits without closing its engines.
func Shutdown() {
	pool.mu.Lock()
	procs := pool.procs
	pool.procs = map[string]*proc{}
	pool.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr.stop()
		}()
	}
	wg.Wait()
}

// Running returns the pids of the plugin processes alive now, by plugin name.
func Running() map[string][]int {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	out := map[string][]int{}
	for _, pr := range pool.procs {
		pr.mu.Lock()
		if pr.cur != nil && !pr.cur.client.Exited() {
			out[pr.ref.Name] = append(out[pr.ref.Name], pr.cur.pid)
		}
		pr.mu.Unlock()
	}
	return out
}

// proc is one plugin binary with one config: at most one live process at a time.
type proc struct {
	key string
	ref PluginRef
	log hclog.Logger

	refs int // guarded by pool.mu

	mu       sync.Mutex
	cur      *instance
	stopped  bool
	launches int // guarded by mu
}

func (pr *proc) release() {
	pool.mu.Lock()
	pr.refs--
	last := pr.refs <= 0
	if last && pool.procs[pr.key] == pr {
		delete(pool.procs, pr.key)
	}
	pool.mu.Unlock()
	if last {
		pr.stop()
	}
}

func (pr *proc) stop() {
	pr.mu.Lock()
	inst := pr.cur
	pr.cur, pr.stopped = nil, true
	pr.mu.Unlock()
	if inst != nil {
		inst.kill(false)
	}
}

// drop forgets inst, when it is still the live one, and kills it.
func (pr *proc) drop(inst *instance, hard bool) {
	pr.mu.Lock()
	if pr.cur == inst {
		pr.cur = nil
	}
	pr.mu.Unlock()
	inst.kill(hard)
}

// get returns the live process, launching one when there is none.
func (pr *proc) get(ctx context.Context) (*instance, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.stopped {
		return nil, errdefs.Unavailable(fmt.Errorf("plugin %s was stopped", pr.ref.Name))
	}
	if pr.cur != nil {
		select {
		case <-pr.cur.api.Done():
			pr.log.Warn("plugin process is gone; restarting it", "pid", pr.cur.pid)
			go pr.cur.kill(true)
			pr.cur = nil
		default:
			return pr.cur, nil
		}
	}
	if pr.launches > 0 {
		restarts.Add(1) // a process of this plugin ran before: it died, hung or was killed
	}
	pr.launches++
	inst, err := launch(ctx, pr.ref, pr.log)
	if err != nil {
		return nil, err
	}
	pr.cur = inst
	return inst, nil
}

// restarts counts the plugin processes launched to replace one that died, hung or was
// killed, in this process.
var restarts atomic.Uint64

// Restarts returns how many plugin processes were launched to replace one that died, hung or
// was killed: what an operator watches to see a plugin crash-looping.
func Restarts() uint64 { return restarts.Load() }

// instance is one running plugin process.
type instance struct {
	client *plugin.Client
	api    *hostapi.Client
	ch     *hostapi.Channel // the fd channel, when the stage calls use it
	pid    int
	stderr *tail
	desc   hostapi.Description
	once   sync.Once
}

// TransportEnv, set to "grpc" in the engine's environment, keeps every plugin's stage calls
// on gRPC, as PluginRef.GRPCOnly does for one: an operator's way around the fd channel
// without editing pipelines. "fd-channel" or empty is the default.
const TransportEnv = "SLIPWAY_PLUGIN_TRANSPORT"

func grpcOnlyFromEnv(log hclog.Logger) bool {
	switch v := os.Getenv(TransportEnv); v {
	case "", "fd-channel":
		return false
	case "grpc":
		return true
	default:
		log.Warn("unknown plugin transport; using the default", "env", TransportEnv, "value", v, "known", "fd-channel, grpc")
		return false
	}
}

// transport names how the stage calls travel: "fd-channel" or "grpc".
func (i *instance) transport() string {
	if i.ch != nil {
		return "fd-channel"
	}
	return "grpc"
}

// fixedName keeps the plugin's logger name: go-plugin would name it after the binary's
// file, which in the store is NAME-DIGEST.
type fixedName struct{ hclog.Logger }

func (f fixedName) Named(string) hclog.Logger { return f.Logger }

var versionRE = regexp.MustCompile(`Plugin version: (\d+)`)

func launch(ctx context.Context, ref PluginRef, log hclog.Logger) (*instance, error) {
	inst, err := start(ctx, ref, log)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, ref.StartTimeout)
	defer cancel()
	if err := inst.api.Configure(cctx, ref.Config); err != nil {
		var te *hostapi.TransportError
		if errors.As(err, &te) {
			err = errdefs.Unavailable(fmt.Errorf("plugin %s: configure: %w", ref.Name, err))
		}
		inst.kill(true)
		return nil, err
	}
	log.Debug("plugin started", "pid", inst.pid, "version", inst.desc.Version, "protocol", inst.client.NegotiatedVersion(), "transport", inst.transport())
	return inst, nil
}

// start launches the plugin, checks its binary and its capabilities and asks it to
// describe itself, without configuring it.
func start(ctx context.Context, ref PluginRef, log hclog.Logger) (*instance, error) {
	if err := VerifyFile(ref.Path, ref.digest()); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", ref.Name, err)
	}
	want, _ := hex.DecodeString(ref.digest())
	cmd := exec.Command(ref.Path)
	cmd.Env = append([]string{}, ref.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Offer the fd channel: the first file past stdin, stdout and stderr is descriptor 3.
	var ch *hostapi.Channel
	if !ref.GRPCOnly && !grpcOnlyFromEnv(log) {
		c, child, err := hostapi.NewChannel()
		if err != nil {
			log.Warn("cannot make the plugin's fd channel; its calls use gRPC", "error", err)
		} else {
			ch = c
			defer child.Close() // the child has its own copy once started
			cmd.ExtraFiles = []*os.File{child}
			cmd.Env = append(cmd.Env, hostapi.ChannelFDEnv+"=3")
		}
	}
	st := &tail{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  hostapi.Handshake,
		VersionedPlugins: hostapi.VersionedPlugins(&hostapi.GRPCPlugin{}),
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: want, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     ref.StartTimeout,
		Logger:           fixedName{log},
		Stderr:           st,
		SyncStdout:       lineLogger{log: log, stream: "stdout"},
		SyncStderr:       lineLogger{log: log, stream: "stderr"},
	})
	var startErr error
	onLauncher(func() { _, startErr = client.Start() })
	fail := func(err error) (*instance, error) {
		killClient(client, true)
		if ch != nil {
			ch.Close()
		}
		return nil, err
	}
	if startErr != nil {
		if m := versionRE.FindStringSubmatch(startErr.Error()); m != nil {
			return fail(errdefs.FailedPrecondition(fmt.Errorf("plugin %s speaks plugin protocol version %s, this Slipway speaks version %d: %w",
				ref.Name, m[1], hostapi.ProtocolVersion, startErr)))
		}
		why := startErr.Error()
		if t := st.String(); t != "" {
			why += "; its stderr: " + lastLines(t, 5)
		}
		return fail(errdefs.Unavailable(fmt.Errorf("plugin %s (%s) did not start: %s", ref.Name, ref.Path, why)))
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(errdefs.Unavailable(fmt.Errorf("plugin %s: connect: %w", ref.Name, err)))
	}
	raw, err := rpc.Dispense(hostapi.PluginKey)
	if err != nil {
		return fail(errdefs.Unavailable(fmt.Errorf("plugin %s: %w", ref.Name, err)))
	}
	inst := &instance{client: client, api: raw.(*hostapi.Client), stderr: st}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	cctx, cancel := context.WithTimeout(ctx, ref.StartTimeout)
	defer cancel()
	d, err := inst.api.Describe(cctx)
	if err != nil {
		return fail(errdefs.Unavailable(fmt.Errorf("plugin %s: describe: %w", ref.Name, err)))
	}
	inst.desc = hostapi.DescriptionOf(d)
	if miss := inst.desc.Missing(hostapi.RequiredCapabilities); len(miss) > 0 {
		return fail(errdefs.FailedPrecondition(fmt.Errorf("plugin %s %s lacks capabilities %s that this Slipway needs (it has: %s)",
			ref.Name, inst.desc.Version, strings.Join(miss, ", "), strings.Join(inst.desc.Capabilities, ", "))))
	}
	if ch != nil {
		if len(inst.desc.Missing([]string{hostapi.CapFDChannel})) > 0 {
			ch.Close()
		} else if err := ch.Ready(time.Second); err != nil {
			log.Warn("plugin lists the fd channel but does not serve it; its calls use gRPC", "error", err)
			ch.Close()
		} else {
			inst.ch = ch
			inst.api.UseChannel(ch)
		}
	}
	return inst, nil
}

// Describe launches the plugin p (verifying its binary), asks it what it serves and stops
// it. The plugin is not configured: this works before its config is known.
func Describe(ctx context.Context, p PluginRef, log hclog.Logger) (hostapi.Description, error) {
	if len(p.Config) == 0 {
		p.Config = json.RawMessage("{}")
	}
	if err := p.check(); err != nil {
		return hostapi.Description{}, err
	}
	if p.StartTimeout <= 0 {
		p.StartTimeout = DefaultStartTimeout
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	inst, err := start(ctx, p, log.ResetNamed("plugin."+p.Name))
	if err != nil {
		return hostapi.Description{}, err
	}
	inst.kill(false)
	return inst.desc, nil
}

// kill stops the process: gracefully (go-plugin's Kill, bounded) unless hard, and then
// SIGKILLs its process group, so children it started go too.
func (i *instance) kill(hard bool) {
	i.once.Do(func() {
		if i.ch != nil {
			defer i.ch.Close()
		}
		if hard && i.pid > 0 {
			_ = syscall.Kill(-i.pid, syscall.SIGKILL)
		}
		killClient(i.client, hard)
		if i.pid > 0 {
			_ = syscall.Kill(-i.pid, syscall.SIGKILL)
		}
	})
}

func killClient(c *plugin.Client, hard bool) {
	if hard {
		if rc := c.ReattachConfig(); rc != nil && rc.Pid > 0 {
			_ = syscall.Kill(-rc.Pid, syscall.SIGKILL)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Kill()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		if rc := c.ReattachConfig(); rc != nil && rc.Pid > 0 {
			_ = syscall.Kill(-rc.Pid, syscall.SIGKILL)
		}
		<-done
	}
}

// launcher is the one goroutine, locked to its OS thread for the life of the process, that
// starts plugin processes: Pdeathsig is tied to the thread that forks the child.
var (
	launchOnce sync.Once
	launchCh   = make(chan func())
)

func onLauncher(f func()) {
	launchOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every plugin
			for f := range launchCh {
				f()
			}
		}()
	})
	done := make(chan struct{})
	launchCh <- func() {
		defer close(done)
		f()
	}
	<-done
}

// lineLogger logs what a plugin writes to its stdout or stderr after the handshake.
type lineLogger struct {
	log    hclog.Logger
	stream string
}

func (l lineLogger) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" {
			l.log.Info(line, "stream", l.stream)
		}
	}
	return len(b), nil
}

// tail keeps the last 16 KiB of a plugin's raw stderr.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 16 << 10

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailMax {
		t.buf = append([]byte{}, t.buf[len(t.buf)-tailMax:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// panicLine returns the first line of a Go panic or fatal error in the tail.
func (t *tail) panicLine() string {
	for _, line := range strings.Split(t.String(), "\n") {
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

var _ io.Writer = (*tail)(nil)
