package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/container"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Options configure an Engine. The zero value of every field but Pipeline works.
type Options struct {
	// Root is the state root; DefaultRoot() when empty.
	Root string
	// Logger receives the engine's logs; a null logger when nil.
	Logger hclog.Logger
	// Pipeline chooses the stage implementations. Required.
	Pipeline *Pipeline
	// Images builds the image store. Without it the engine has no images and the image
	// stage must find them elsewhere.
	Images func(ctx context.Context, env Env) (ImageService, error)
	// UndoTimeout bounds each undo; 60 seconds when zero.
	UndoTimeout time.Duration
	// NoSync turns off fsync of the state database and of the record log: faster, and a
	// power loss may lose the last containers created or removed. A killed process loses
	// nothing either way.
	NoSync bool
	// SyncJournal turns on fsync of the journal of runs in flight. Without it (the default)
	// a journal entry reaches the page cache before the run's first effect, which survives
	// the death of the process (kill -9, a panic, the OOM killer) but not a power loss, after
	// which a half-done create can leave a snapshot or directory behind. Records, and runs
	// whose undo failed, are always written with fsync unless NoSync is set.
	SyncJournal bool
	// Hook, when set, is called at every stage boundary: phase is "before", "after" or
	// "undo". It exists for tests that need to stop the engine at an exact point.
	Hook func(ctx context.Context, op string, stage spec.Stage, phase string)
	// Observer, when set, is told how every stage call went (metrics).
	Observer Observer
	// Resolve, when set, builds the implementation recorded as key for stage when the
	// engine does not know it otherwise: it is not in the current pipeline, was not built
	// before in this process and is not among the pipeline's Known ones. It lets a container
	// be removed (or mounted) with exactly the implementation that created it after the
	// pipeline moved on or the engine restarted: a plugin host resolves
	// "plugin:NAME@sha256:HEX" to the stored binary, say. It returns false for a key it
	// does not know; the Impl it returns must have that Stage and that Key. It must not run
	// any stage: the engine builds the Impl once and keeps it until Close, like any other.
	Resolve func(ctx context.Context, stage spec.Stage, key string) (Impl, bool)
}

// Observer receives the outcome of every stage call and every run.
type Observer interface {
	StageDone(stage spec.Stage, impl string, d time.Duration, err error)
	RunDone(op string, d time.Duration, err error, undone bool)
}

// DefaultRoot is /var/lib/slipway for root and $XDG_DATA_HOME/slipway (or
// ~/.local/share/slipway) for anyone else.
func DefaultRoot() string {
	if os.Geteuid() == 0 {
		return "/var/lib/slipway"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "slipway")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "slipway")
}

// Engine creates, inspects, lists and removes containers through a pipeline of stages. It is
// safe for concurrent use. Only one Engine (one process) may open a state root at a time.
type Engine struct {
	root   string
	log    hclog.Logger
	opts   Options
	db     *bolt.DB
	st     *store
	env    Env
	images ImageService

	snap atomic.Pointer[snapshot]

	instMu sync.Mutex
	insts  map[string]any // "stage/name" -> built implementation, kept for the life of the engine

	rmMu   sync.Mutex
	active map[string]struct{} // IDs of the runs in flight in this process

	runs   sync.WaitGroup
	closed atomic.Bool

	// reloadMu makes reloads, and the retirement of old snapshots, one at a time.
	reloadMu sync.Mutex

	// snapMu guards the run counts of snapshots and the set of retired snapshots that
	// still have runs in flight (live).
	snapMu sync.Mutex
	live   map[*snapshot]struct{}

	// uses counts the calls in flight outside runs (removals, mounts) per implementation key.
	uses map[string]int

	// opened is what the recovery at Open did.
	opened RecoverReport
}

// Open opens (creating it if needed) the state root, builds the pipeline and finishes the
// undo of every run that a previous process left half-done.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot()
	}
	if opts.UndoTimeout == 0 {
		opts.UndoTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if err := opts.Pipeline.Validate(); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("state root %q: %w", opts.Root, err))
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("create state root: %w", err))
	}
	db, err := bolt.Open(filepath.Join(root, "slipway.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: opts.NoSync, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, errdefs.Unavailable(fmt.Errorf("state root %s is in use by another slipway process", root))
		}
		return nil, errdefs.Internal(fmt.Errorf("open state database: %w", err))
	}
	jr, err := openJournal(root, opts.SyncJournal && !opts.NoSync, opts.Logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	e := &Engine{
		root:   root,
		log:    opts.Logger,
		opts:   opts,
		db:     db,
		insts:  map[string]any{},
		active: map[string]struct{}{},
		live:   map[*snapshot]struct{}{},
		uses:   map[string]int{},
	}
	if e.st, err = openStore(db, jr, root, !opts.NoSync, opts.Logger); err != nil {
		jr.close()
		db.Close()
		return nil, err
	}
	e.env = Env{Root: root, DB: db, Logger: opts.Logger, Host: hostView{e}, Store: e.st, Shared: &Shared{}, Events: e}
	if opts.Images != nil {
		if e.images, err = opts.Images(ctx, e.env); err != nil {
			jr.close()
			db.Close()
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	e.env.Images = e.images
	snap, err := e.build(ctx, *opts.Pipeline)
	if err != nil {
		e.closeInstances()
		jr.close()
		db.Close()
		return nil, err
	}
	e.snap.Store(snap)
	rep, err := e.Recover(ctx)
	if err != nil {
		e.log.Error("recovery left runs behind; slipway recover retries them", "error", err, "recovered", len(rep.Recovered))
	} else if len(rep.Recovered) > 0 {
		e.log.Info("recovered half-done runs", "runs", len(rep.Recovered))
	}
	e.opened = rep
	return e, nil
}

// OpenRecovery returns what the recovery at Open did.
func (e *Engine) OpenRecovery() RecoverReport { return e.opened }

// Root returns the state root.
func (e *Engine) Root() string { return e.root }

// Images returns the image store, or nil when the engine has none.
func (e *Engine) Images() ImageService { return e.images }

// Env returns the environment implementations are built with.
func (e *Engine) Env() Env { return e.env }

// Reload builds a snapshot of p beside the current one and swaps it in atomically. Runs in
// flight finish on the snapshot they started with; new runs use the new one. A pipeline that
// does not validate or build leaves the current snapshot in force.
//
// Once the last run of the old snapshot has ended, the implementations that no live
// snapshot uses any more are closed (a plugin's process stops) and forgotten; the old
// pipeline's implementations stay known, so a container created with one is removed with it,
// built again on demand.
func (e *Engine) Reload(ctx context.Context, p *Pipeline) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.runs.Done()
	if err := p.Validate(); err != nil {
		return err
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	old := e.snap.Load()
	merged := *p
	// The replaced implementations stay known, for removing the containers they made.
	merged.Known = append(append([]Impl(nil), p.Known...), old.pipeline.Known...)
	for _, impl := range old.pipeline.Stages {
		merged.Known = append(merged.Known, impl)
	}
	snap, err := e.build(ctx, merged)
	if err != nil {
		return err
	}
	e.snapMu.Lock()
	e.snap.Store(snap)
	old.retired = true
	idle := old.active == 0
	if !idle {
		e.live[old] = struct{}{}
	}
	e.snapMu.Unlock()
	e.log.Info("pipeline reloaded", "implementations", fmt.Sprint(snap.names))
	if idle {
		e.retireLocked(old)
	}
	return nil
}

// acquireSnapshot returns the current snapshot, counted as used by one more run.
func (e *Engine) acquireSnapshot() *snapshot {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	s := e.snap.Load()
	s.active++
	return s
}

// releaseSnapshot ends a run's use of s; the last run of a replaced snapshot retires it.
func (e *Engine) releaseSnapshot(s *snapshot) {
	e.snapMu.Lock()
	s.active--
	idle := s.retired && s.active == 0
	if idle {
		delete(e.live, s)
	}
	e.snapMu.Unlock()
	if idle {
		e.reloadMu.Lock()
		e.retireLocked(s)
		e.reloadMu.Unlock()
	}
}

// retireLocked closes the implementations and checks of the replaced snapshot s that neither
// the current snapshot nor a live one uses, unless a removal is using them (it closes them
// when it is done). The caller holds reloadMu, so no reload builds a snapshot from an
// instance being closed.
func (e *Engine) retireLocked(s *snapshot) {
	needed := e.neededKeys()
	var closers []Closer
	e.instMu.Lock()
	for st, n := range s.names {
		key := string(st) + "/" + n
		if needed[key] || e.uses[key] > 0 {
			continue
		}
		if c, ok := e.insts[key].(Closer); ok {
			closers = append(closers, c)
		}
		delete(e.insts, key)
	}
	e.instMu.Unlock()
	for _, list := range []map[spec.Stage][]checkAt{s.before, s.after} {
		for _, cs := range list {
			for _, c := range cs {
				if cl, ok := c.c.(Closer); ok {
					closers = append(closers, cl)
				}
			}
		}
	}
	for _, c := range closers {
		if err := c.Close(); err != nil {
			e.log.Warn("closing a retired implementation failed", "error", err)
		}
	}
}

// neededKeys returns the implementation keys of the current snapshot and of the replaced
// ones that still have runs in flight.
func (e *Engine) neededKeys() map[string]bool {
	needed := map[string]bool{}
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	for _, other := range append([]*snapshot{e.snap.Load()}, keysOf(e.live)...) {
		for st, n := range other.names {
			needed[string(st)+"/"+n] = true
		}
	}
	return needed
}

func keysOf(m map[*snapshot]struct{}) []*snapshot {
	out := make([]*snapshot, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	return out
}

// build makes a snapshot from p, building each implementation once per key.
func (e *Engine) build(ctx context.Context, p Pipeline) (*snapshot, error) {
	s := &snapshot{pipeline: p, names: map[spec.Stage]string{}, timeouts: map[spec.Stage]time.Duration{}, before: map[spec.Stage][]checkAt{}, after: map[spec.Stage][]checkAt{}}
	for _, st := range spec.Stages {
		impl := p.Stages[st]
		v, err := e.instance(ctx, impl, false)
		if err != nil {
			return nil, err
		}
		s.names[st] = impl.Key()
		if impl.Timeout > 0 {
			s.timeouts[st] = impl.Timeout
		}
		switch st {
		case spec.StageVerify:
			s.verify = v.(Verifier)
		case spec.StageImage:
			s.image = v.(ImageResolver)
		case spec.StageMerge:
			s.merge = v.(Merger)
		case spec.StageSecurity:
			s.security = v.(Securer)
		case spec.StageLayer:
			s.layer = v.(Layerer)
		case spec.StageMkdir:
			s.mkdir = v.(DirMaker)
		case spec.StageNetwork:
			s.network = v.(Networker)
		case spec.StageRegister:
			s.register = v.(Registrar)
		}
	}
	for _, c := range p.Checks {
		ch, err := c.New(ctx, e.env)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", c.Name, err)
		}
		if c.Before != "" {
			s.before[c.Before] = append(s.before[c.Before], checkAt{c.Name, ch})
		} else {
			s.after[c.After] = append(s.after[c.After], checkAt{c.Name, ch})
		}
	}
	return s, nil
}

// instance returns the built implementation impl, building it on first use; with hold, the
// implementation is counted as in use until unuse.
func (e *Engine) instance(ctx context.Context, impl Impl, hold bool) (any, error) {
	key := string(impl.Stage) + "/" + impl.Key()
	e.instMu.Lock()
	defer e.instMu.Unlock()
	if v, ok := e.insts[key]; ok {
		if hold {
			e.uses[key]++
		}
		return v, nil
	}
	v, err := impl.New(ctx, e.env)
	if err != nil {
		return nil, fmt.Errorf("build %s implementation %q: %w", impl.Stage, impl.Name, err)
	}
	if !implementsStage(impl.Stage, v) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("implementation %q (%T) does not implement the %s stage", impl.Name, v, impl.Stage))
	}
	e.insts[key] = v
	if hold {
		e.uses[key]++
	}
	return v, nil
}

// undoerFor finds the implementation named name of stage st: among those built (the
// current snapshot's and older ones), among the pipeline's known ones, or from
// Options.Resolve. The implementation is held until release is called: a reload does not
// close it meanwhile.
func (e *Engine) undoerFor(ctx context.Context, st spec.Stage, name string) (u Undoer, release func(), err error) {
	key := string(st) + "/" + name
	e.instMu.Lock()
	v, ok := e.insts[key]
	if ok {
		e.uses[key]++
	}
	e.instMu.Unlock()
	if !ok {
		snap := e.snap.Load()
		var impl *Impl
		for _, k := range snap.pipeline.Known {
			if k.Stage == st && k.Key() == name {
				impl = &k
				break
			}
		}
		if impl == nil && e.opts.Resolve != nil {
			if r, ok := e.opts.Resolve(ctx, st, name); ok {
				if r.Stage != st || r.Key() != name || r.New == nil {
					return nil, nil, errdefs.Internal(fmt.Errorf("resolving implementation %q of stage %s gave %q of stage %s", name, st, r.Key(), r.Stage))
				}
				impl = &r
			}
		}
		if impl == nil {
			return nil, nil, errdefs.FailedPrecondition(fmt.Errorf("implementation %q of stage %s is not available to undo with", name, st))
		}
		if v, err = e.instance(ctx, *impl, true); err != nil {
			return nil, nil, err
		}
	}
	release = func() { e.unuse(key) }
	u, ok = v.(Undoer)
	if !ok {
		release()
		return nil, nil, errdefs.Internal(fmt.Errorf("implementation %q of stage %s cannot undo", name, st))
	}
	return u, release, nil
}

// unuse ends one hold of key. An implementation that no snapshot uses any more (one built
// again to remove an old container, or one whose snapshot was retired meanwhile) is closed
// once its last hold ends: a plugin's process does not outlive its use.
func (e *Engine) unuse(key string) {
	e.instMu.Lock()
	e.uses[key]--
	zero := e.uses[key] <= 0
	if zero {
		delete(e.uses, key)
	}
	e.instMu.Unlock()
	if !zero {
		return
	}
	// Under reloadMu, so that no reload is taking the instance into a snapshot meanwhile.
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	needed := e.neededKeys()
	var c Closer
	e.instMu.Lock()
	if e.uses[key] == 0 && !needed[key] {
		c, _ = e.insts[key].(Closer)
		delete(e.insts, key)
	}
	e.instMu.Unlock()
	if c != nil {
		if err := c.Close(); err != nil {
			e.log.Warn("closing an implementation no snapshot uses failed", "key", key, "error", err)
		}
	}
}

// NewID returns a new 64-hex container ID whose first 12 characters are not all digits (a
// numeric hostname is trouble).
func NewID() string {
	var b [32]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		id := hex.EncodeToString(b[:])
		if strings.Trim(id[:12], "0123456789") != "" {
			return id
		}
	}
}

// Close waits for the runs in flight, closes the implementations and the state database.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	e.runs.Wait()
	err := e.closeInstances()
	if cerr := e.st.rl.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if cerr := e.st.j.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if cerr := e.db.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

func (e *Engine) closeInstances() error {
	e.instMu.Lock()
	defer e.instMu.Unlock()
	var errs []error
	for k, v := range e.insts {
		if c, ok := v.(Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", k, err))
			}
		}
	}
	if c, ok := e.images.(Closer); ok {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func (e *Engine) enter() error {
	e.runs.Add(1)
	if e.closed.Load() {
		e.runs.Done()
		return errdefs.Unavailable(errors.New("engine is closed"))
	}
	return nil
}

// Store returns the registry the register stage commits to.
func (e *Engine) Store() Store { return e.st }

// hostView is the engine as the stages see it.
type hostView struct{ e *Engine }

func (h hostView) Container(ctx context.Context, ref string) (*spec.Record, error) {
	return h.e.st.get(ref)
}

func (h hostView) Containers(ctx context.Context) ([]*spec.Record, error) {
	return h.e.st.all(), nil
}

// Inspect returns the container with that ID, unique ID prefix or name, in the shape of
// docker inspect.
func (e *Engine) Inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	rec, err := e.st.get(ref)
	if err != nil {
		return container.InspectResponse{}, err
	}
	out := inspectOf(rec)
	withLinks(&out, rec, func(name string) bool {
		r, err := e.st.get(name)
		return err == nil && r.Name == name
	})
	return out, nil
}

// Record returns the stored record of the container with that ID, unique prefix or name.
func (e *Engine) Record(ctx context.Context, ref string) (*spec.Record, error) {
	return e.st.get(ref)
}

// ListOptions select the containers List returns.
type ListOptions struct {
	// All includes containers that are not running; as Slipway never starts containers,
	// every container is listed either way, but dead ones (a failed removal) only with All.
	All bool
}

// List returns the containers, newest first, in the shape of docker ps. As in moby, a
// container's Names are its name and the paths of the links to it ("/web/db"), sorted.
func (e *Engine) List(ctx context.Context, opts ListOptions) ([]container.Summary, error) {
	recs := e.st.all()
	// Newest first, to the nanosecond: many containers are created within one second.
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].Created.Equal(recs[j].Created) {
			return recs[i].Created.After(recs[j].Created)
		}
		return recs[i].ID < recs[j].ID
	})
	links := linkNames(recs)
	out := make([]container.Summary, 0, len(recs))
	for _, r := range recs {
		if r.State == "dead" && !opts.All {
			continue
		}
		s := summaryOf(r)
		if l := links[r.Name]; len(l) > 0 {
			s.Names = append(s.Names, l...)
			sort.Strings(s.Names)
		}
		out = append(out, s)
	}
	if opts.All {
		runs, err := e.st.runs()
		if err != nil {
			return nil, errdefs.Internal(err)
		}
		for _, r := range runs {
			if r.Failed == "" {
				continue
			}
			if _, err := e.st.get(r.ID); err == nil {
				continue // listed above, as dead
			}
			out = append(out, container.Summary{ID: r.ID, Names: []string{"/" + r.Name}, State: "dead", Status: "Dead (undo failed: " + r.Failed + ")", Created: r.Start.Unix(), Labels: map[string]string{}})
		}
	}
	return out, nil
}

// linkNames returns, by target name, the paths of the legacy links to each container
// ("/web/db" when web links to it as db), which moby registers as further names of the
// target and lists among its Names. A link counts while its target exists, as in inspect.
func linkNames(recs []*spec.Record) map[string][]string {
	names := make(map[string]bool, len(recs))
	for _, r := range recs {
		names[r.Name] = true
	}
	out := map[string][]string{}
	for _, r := range recs {
		if r.Network == nil {
			continue
		}
		for _, l := range r.Network.Links {
			target, path, ok := strings.Cut(strings.TrimPrefix(l, "/"), ":")
			if ok && names[target] {
				out[target] = append(out[target], path)
			}
		}
	}
	return out
}

// Events returns the logged events between since and until (zero values: unbounded).
func (e *Engine) Events(ctx context.Context, since, until time.Time) ([]Event, error) {
	evs, err := e.st.events(since, until)
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("read events: %w", err))
	}
	return evs, nil
}

// Subscribe returns a channel of events from now on, and a function that ends the
// subscription. A subscriber that does not keep up loses events.
func (e *Engine) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 256)
	e.st.evmu.Lock()
	e.st.subs[ch] = struct{}{}
	e.st.evmu.Unlock()
	return ch, func() {
		e.st.evmu.Lock()
		delete(e.st.subs, ch)
		e.st.evmu.Unlock()
	}
}

// Mount mounts the root filesystem of the container with that ID, prefix or name on the host
// and returns where, using the layer implementation that created it.
func (e *Engine) Mount(ctx context.Context, ref string) (string, error) {
	rec, m, release, err := e.mounter(ctx, ref)
	if err != nil {
		return "", err
	}
	defer release()
	return m.Mount(ctx, rec)
}

// Unmount undoes Mount; it is idempotent.
func (e *Engine) Unmount(ctx context.Context, ref string) error {
	rec, m, release, err := e.mounter(ctx, ref)
	if err != nil {
		return err
	}
	defer release()
	return m.Unmount(ctx, rec)
}

func (e *Engine) mounter(ctx context.Context, ref string) (*spec.Record, Mounter, func(), error) {
	rec, err := e.st.get(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	name := rec.Implementations[spec.StageLayer]
	u, release, err := e.undoerFor(ctx, spec.StageLayer, name)
	if err != nil {
		return nil, nil, nil, err
	}
	m, ok := u.(Mounter)
	if !ok {
		release()
		return nil, nil, nil, errdefs.FailedPrecondition(fmt.Errorf("layer implementation %q of container %s cannot mount", name, rec.ID))
	}
	return rec, m, release, nil
}

// PruneLayers removes the unpacked layers that no image in the store needs any more, through
// the current pipeline's layer stage when it can prune (LayerPruner) and the image store can
// list its chains (ChainLister); otherwise it does nothing. Callers run it after an image is
// deleted. It returns the snapshot names removed.
func (e *Engine) PruneLayers(ctx context.Context) ([]string, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.runs.Done()
	cl, ok := e.images.(ChainLister)
	if !ok {
		return nil, nil
	}
	s := e.acquireSnapshot()
	defer e.releaseSnapshot(s)
	p, ok := s.layer.(LayerPruner)
	if !ok {
		return nil, nil
	}
	keep, err := cl.ChainIDs(ctx)
	if err != nil {
		return nil, err
	}
	return p.PruneLayers(ctx, func(chain string) bool { return keep[chain] })
}

// ImageUser returns the ID of a container created from image id, and whether there is one.
func (e *Engine) ImageUser(id string) (string, bool) {
	for _, r := range e.st.all() {
		if r.Image != nil && r.Image.ID == id {
			return r.ID, true
		}
	}
	return "", false
}
