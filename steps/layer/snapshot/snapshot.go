package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/selinux/go-selinux/label"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/singleflight"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the name of this implementation, recorded in every container it prepares.
const Name = "snapshot"

// The drivers, as recorded in spec.RootFS.Driver.
const (
	DriverOverlay = "overlayfs"
	DriverNative  = "native"
	// DriverAuto picks DriverOverlay when the kernel and filesystem support it, else DriverNative.
	DriverAuto = "auto"
)

const (
	extractPrefix = "extract-"
	initPrefix    = "init-"
	// initEmpty names the init layer of an image without layers.
	initEmpty = initPrefix + "empty"
)

// Option configures the stage.
type Option func(*options)

type options struct {
	driver   string
	uid, gid int
	noSync   bool
	noReaper bool
	noPool   bool
}

// WithoutPool makes every create prepare its snapshot itself, keyed by the container ID,
// instead of taking one made ahead (see snapshotPool).
func WithoutPool() Option {
	return func(o *options) { o.noPool = true }
}

// WithoutReaper makes the undo of a removal remove the container's snapshot at once, as a
// rollback does, instead of leaving it to the reaper (see the package documentation). It
// is for hosts that may stop the stage without calling Close, such as a plugin process that
// its host kills: the reaper's work would wait for the next start.
func WithoutReaper() Option {
	return func(o *options) { o.noReaper = true }
}

// WithSnapshotter forces the driver: DriverOverlay, DriverNative or DriverAuto (the
// default, also chosen by an empty name). Forcing overlayfs on a host that does not support
// it makes New fail.
func WithSnapshotter(name string) Option {
	return func(o *options) { o.driver = name }
}

// WithRemappedRoot makes uid and gid the owner of the init layer's entries, for user
// namespace remapping; root (0, 0) by default.
func WithRemappedRoot(uid, gid int) Option {
	return func(o *options) { o.uid, o.gid = uid, gid }
}

// WithNoSync turns off fsync of the overlayfs snapshotter's metadata database (the native
// snapshotter offers no such choice): a create and a remove each save two fsyncs. A killed
// process loses nothing; a power loss may lose or damage the snapshot metadata of the last
// containers, as the engine's own NoSync does for its records.
func WithNoSync() Option {
	return func(o *options) { o.noSync = true }
}

// Impl returns the layer stage implementation named "snapshot", built with opts.
func Impl(opts ...Option) core.Impl {
	return core.Impl{
		Stage: spec.StageLayer,
		Name:  Name,
		New: func(ctx context.Context, env core.Env) (any, error) {
			return New(ctx, env, opts...)
		},
	}
}

// driver is one opened snapshotter.
type driver struct {
	name  string
	root  string // <env.Root>/snapshots/<name>
	sn    snapshots.Snapshotter
	trash *trash // overlay only: directories of removed snapshots, deleted in the background
	// reaper removes the snapshots of removed containers in the background.
	reaper *reaper
	// ms is the overlay snapshotter's metadata store and spares its pool of ready-made
	// snapshot directories (see prepareActive); both nil for native.
	ms     *groupStore
	spares *spareDirs
	// pool holds container snapshots made ahead (see snapshotPool); nil for native.
	pool *snapshotPool
	// noSync: the metadata store does not fsync (WithNoSync), nor does the pool.
	noSync bool
	log    hclog.Logger
}

// touch notes that a snapshot is being prepared or removed (see trash and reaper).
func (d *driver) touch() {
	d.trash.touch()
	d.reaper.touch()
}

// Layerer is the layer stage. Build it with New; it must be closed with Close.
type Layerer struct {
	set    *driverSet
	root   string // <env.Root>/snapshots
	images core.ImageService
	// host lists the registered containers, for the sweep of spare snapshots; without it
	// the stage neither makes nor sweeps them (see snapshotPool).
	host core.Host
	log  hclog.Logger
	opts options
	main *driver

	// others holds the drivers opened on demand to undo or mount containers that were
	// prepared with another driver than main.
	othersMu sync.Mutex
	others   map[string]*driver

	// ready holds the names of the committed snapshots (layers and init layers) of main
	// known to exist: nothing ever removes them.
	ready sync.Map
	// flights makes one goroutine build each layer or init layer while the others wait.
	flights singleflight.Group

	// mountMu serialises Mount and Unmount.
	mountMu sync.Mutex

	// stateMu guards closed; ops counts the calls and flights in progress for Close.
	stateMu sync.Mutex
	closed  bool
	ops     sync.WaitGroup
}

// New opens (creating it if needed) the snapshotter below env.Root/snapshots, chosen as
// WithSnapshotter says, and removes the work that a crashed process left behind (Sweep).
// env.Images may be nil when the stage is built only to undo; PrepareRootFS then fails.
func New(ctx context.Context, env core.Env, opts ...Option) (*Layerer, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if env.Root == "" {
		return nil, errdefs.InvalidArgument(errors.New("layer stage: state root is not set"))
	}
	root := filepath.Join(env.Root, "snapshots")
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("create snapshot root: %w", err))
	}
	name, err := chooseDriver(root, o.driver)
	if err != nil {
		return nil, err
	}
	set := &driverSet{}
	if env.Shared != nil {
		v, err := env.Shared.Get("snapshot/drivers", func() (any, error) { return set, nil })
		if err != nil {
			return nil, err
		}
		set = v.(*driverSet)
	}
	log := env.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d, fresh, err := set.acquire(root, name, o.noSync, log)
	if err != nil {
		return nil, err
	}
	l := &Layerer{
		set:    set,
		root:   root,
		images: env.Images,
		host:   env.Host,
		log:    log,
		opts:   o,
		main:   d,
		others: map[string]*driver{},
	}
	l.log = l.log.Named("layer")
	// The first instance in the process sweeps every driver; a later one (a reload builds
	// instances beside the ones serving runs) only a driver it opened itself: the work in
	// progress of runs in flight must not be taken for a crash's leftovers.
	var serr error
	switch {
	case set.firstUse():
		serr = l.Sweep(ctx)
	case fresh:
		serr = l.sweepDriver(ctx, d)
	}
	if serr != nil {
		l.log.Warn("sweeping leftover snapshots failed", "error", serr)
	}
	return l, nil
}

// chooseDriver resolves the configured driver name.
func chooseDriver(root, want string) (string, error) {
	switch want {
	case DriverNative:
		return DriverNative, nil
	case DriverOverlay:
		if err := overlayutils.Supported(filepath.Join(root, DriverOverlay)); err != nil {
			return "", errdefs.FailedPrecondition(fmt.Errorf("snapshotter %q forced but not supported here: %w", DriverOverlay, err))
		}
		return DriverOverlay, nil
	case "", DriverAuto:
		if err := overlayutils.Supported(filepath.Join(root, DriverOverlay)); err != nil {
			return DriverNative, nil
		}
		return DriverOverlay, nil
	}
	return "", errdefs.InvalidArgument(fmt.Errorf("unknown snapshotter %q: want %q, %q or %q", want, DriverOverlay, DriverNative, DriverAuto))
}

// driverSet holds the snapshotters opened in one engine. Every instance of the stage (the
// instances of an old and a new pipeline snapshot after a reload, or one rebuilt to remove a
// container made with another configuration) must share them: a snapshotter's metadata
// database can be opened once per process, a second open would wait for its lock forever.
type driverSet struct {
	mu   sync.Mutex
	open map[string]*driver
	refs map[*driver]int
	used bool
}

// firstUse reports true to its first caller only.
func (s *driverSet) firstUse() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !s.used
	s.used = true
	return first
}

// acquire returns the snapshotter name below root, opening it on first use; fresh reports
// that this call opened it.
func (s *driverSet) acquire(root, name string, noSync bool, log hclog.Logger) (d *driver, fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := filepath.Join(root, name)
	if d, ok := s.open[key]; ok {
		s.refs[d]++
		return d, false, nil
	}
	if d, err = openDriver(root, name, noSync, log); err != nil {
		return nil, false, err
	}
	if s.open == nil {
		s.open, s.refs = map[string]*driver{}, map[*driver]int{}
	}
	s.open[key], s.refs[d] = d, 1
	return d, true, nil
}

// release closes d when its last user lets it go.
func (s *driverSet) release(d *driver) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs[d]--; s.refs[d] > 0 {
		return nil
	}
	delete(s.refs, d)
	delete(s.open, d.root)
	// The pool's removals fill the trash, and so do the reaper's: they go first.
	d.pool.close()
	rerr := d.reaper.close()
	if d.trash != nil {
		d.trash.wait()
	}
	d.spares.close()
	return errors.Join(rerr, d.sn.Close())
}

func openDriver(root, name string, noSync bool, log hclog.Logger) (*driver, error) {
	dir := filepath.Join(root, name)
	var (
		sn  snapshots.Snapshotter
		gs  *groupStore
		err error
	)
	switch name {
	case DriverOverlay:
		// Removal of a container's directory is done by Undo itself (see removeActive): the
		// synchronous removal of the overlay snapshotter scans every snapshot directory.
		// Its metadata store commits the writes of concurrent calls together (groupStore).
		var mopts []storage.Opt
		if noSync {
			mopts = append(mopts, func(o *bolt.Options) error {
				o.NoSync = true
				return nil
			})
		}
		ms, merr := storage.NewMetaStore(filepath.Join(dir, "metadata.db"), mopts...)
		if merr != nil {
			return nil, errdefs.Internal(fmt.Errorf("open %s snapshotter metadata: %w", name, merr))
		}
		gs = newGroupStore(ms)
		sn, err = overlay.NewSnapshotter(dir, overlay.AsynchronousRemove, overlay.WithMetaStore(gs))
		if err == nil {
			sn = groupSnapshotter{sn}
		}
	case DriverNative:
		sn, err = native.NewSnapshotter(dir)
	default:
		return nil, errdefs.InvalidArgument(fmt.Errorf("unknown snapshotter %q", name))
	}
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("open %s snapshotter at %s: %w", name, dir, err))
	}
	d := &driver{name: name, root: dir, sn: sn, ms: gs, noSync: noSync, log: log}
	if name == DriverOverlay {
		if d.spares, err = newSpareDirs(dir, spareSnapshots, log); err != nil {
			return nil, errors.Join(errdefs.Internal(err), sn.Close())
		}
		if d.trash, err = newTrash(dir, log); err != nil {
			return nil, errors.Join(errdefs.Internal(fmt.Errorf("empty the %s trash: %w", name, err)), sn.Close())
		}
		if d.pool, err = newSnapshotPool(d, poolWant, log); err != nil {
			d.trash.wait()
			return nil, errors.Join(errdefs.Internal(err), sn.Close())
		}
	}
	remove := func(ctx context.Context, key string) error { return d.removeActive(ctx, key, log) }
	if d.reaper, err = newReaper(dir, remove, log); err != nil {
		if d.trash != nil {
			d.trash.wait()
		}
		return nil, errors.Join(errdefs.Internal(fmt.Errorf("open the %s reaper: %w", name, err)), sn.Close())
	}
	return d, nil
}

// Driver reports the driver in use: DriverOverlay or DriverNative.
func (l *Layerer) Driver() string { return l.main.name }

// enter registers a call in progress; it fails once Close has started.
func (l *Layerer) enter() error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.closed {
		return errdefs.Unavailable(errors.New("layer stage is closed"))
	}
	l.ops.Add(1)
	return nil
}

// Close waits for the calls in progress and closes the snapshotters.
func (l *Layerer) Close() error {
	l.stateMu.Lock()
	if l.closed {
		l.stateMu.Unlock()
		return nil
	}
	l.closed = true
	l.stateMu.Unlock()
	l.ops.Wait()
	errs := []error{l.set.release(l.main)}
	l.othersMu.Lock()
	for _, d := range l.others {
		errs = append(errs, l.set.release(d))
	}
	l.others = nil
	l.othersMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return errdefs.Internal(fmt.Errorf("close snapshotters: %w", err))
	}
	return nil
}

// PrepareRootFS unpacks what of rec.Image is not unpacked yet, then prepares the container's
// read-write snapshot on the image's init layer: one made ahead by the pool when it has one
// ready (keyed "spare-..."), otherwise one keyed rec.ID. The key is in the output's Key.
func (l *Layerer) PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.ops.Done()
	if rec.Image == nil {
		return nil, errdefs.InvalidArgument(errors.New("prepare root filesystem: the record has no image"))
	}
	if err := checkID(rec.ID); err != nil {
		return nil, err
	}
	parent, err := l.ensureImage(ctx, rec.Image)
	if err != nil {
		return nil, err
	}
	d := l.main
	d.touch()
	// A removed container's key may wait for the reaper: a key used again is removed first.
	if err := d.reaper.take(ctx, rec.ID); err != nil {
		return nil, classify(err, "remove the earlier snapshot of container %s", rec.ID)
	}
	key := rec.ID
	var ms []mount.Mount
	if s, ok := l.takeSpare(d, parent, rec); ok {
		key, ms = s.key, s.mounts
	} else {
		ms, err = d.prepareActive(ctx, rec.ID, parent)
		if cerrdefs.IsNotFound(err) {
			// The image's layers were pruned (PruneLayers, by this or another instance)
			// after they were noted ready here: forget them and unpack again, once.
			l.forget(rec.Image)
			if parent, err = l.ensureImage(ctx, rec.Image); err != nil {
				return nil, err
			}
			ms, err = d.prepareActive(ctx, rec.ID, parent)
		}
		if err != nil {
			return nil, classify(err, "prepare snapshot of container %s", rec.ID)
		}
	}
	mountLabel := ""
	if rec.Security != nil {
		mountLabel = rec.Security.MountLabel
	}
	if mountLabel != "" && d.name == DriverNative && len(ms) == 1 {
		// As moby's vfs driver does: the copy is labelled, a bind mount takes no context=.
		if err := label.Relabel(ms[0].Source, mountLabel, false); err != nil {
			return nil, errdefs.Internal(fmt.Errorf("label root filesystem of container %s: %w", rec.ID, err))
		}
	}
	return &spec.RootFS{
		Driver: d.name,
		Key:    key,
		Mounts: toSpec(withLabel(ms, mountLabel)),
		Data:   l.graphData(d, rec.ID, ms),
	}, nil
}

// takeSpare takes a snapshot on parent from d's pool, when the stage may use the pool.
func (l *Layerer) takeSpare(d *driver, parent string, rec *spec.Record) (readySnapshot, bool) {
	if l.host == nil || l.opts.noPool {
		return readySnapshot{}, false
	}
	return d.pool.take(parent, rec.ID)
}

// snapshotKey returns the key of rec's snapshot in d: the one recorded in rec.RootFS, or
// when none is, the one d's pool handed to rec.ID in this process, or rec.ID (a container
// prepared without the pool). A recorded key must be rec.ID or a pool's.
func snapshotKey(d *driver, rec *spec.Record) (string, error) {
	if rec.RootFS == nil || rec.RootFS.Key == "" {
		if k := d.pool.handedKey(rec.ID); k != "" {
			return k, nil
		}
		return rec.ID, nil
	}
	if rec.RootFS.Key == rec.ID {
		return rec.ID, nil
	}
	if !isSpareKey(rec.RootFS.Key) {
		return "", errdefs.InvalidArgument(fmt.Errorf("container %s: snapshot key %q is neither its ID nor a spare's", rec.ID, rec.RootFS.Key))
	}
	return rec.RootFS.Key, nil
}

// checkID refuses a key that could name a shared snapshot.
func checkID(id string) error {
	if id == "" || strings.HasPrefix(id, extractPrefix) || strings.HasPrefix(id, initPrefix) || strings.HasPrefix(id, sparePrefix) || strings.ContainsAny(id, ":/") {
		return errdefs.InvalidArgument(fmt.Errorf("invalid container ID %q for a snapshot key", id))
	}
	return nil
}

// withLabel adds the SELinux context= option to overlay mounts, as moby's overlay2 driver
// does; mounts of other types and an empty label are left alone.
func withLabel(ms []mount.Mount, mountLabel string) []mount.Mount {
	if mountLabel == "" {
		return ms
	}
	out := make([]mount.Mount, len(ms))
	for i, m := range ms {
		if m.Type == "overlay" {
			m.Options = append(append([]string(nil), m.Options...), label.FormatMountLabel("", mountLabel))
		}
		out[i] = m
	}
	return out
}

func toSpec(ms []mount.Mount) []spec.Mount {
	out := make([]spec.Mount, len(ms))
	for i, m := range ms {
		out[i] = spec.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options}
	}
	return out
}

// graphData is what inspect shows as GraphDriver.Data: for overlayfs the directories in
// moby's overlay2 names, for native the container's directory.
func (l *Layerer) graphData(d *driver, id string, ms []mount.Mount) map[string]string {
	if len(ms) != 1 {
		return nil
	}
	m := ms[0]
	if m.Type != "overlay" {
		return map[string]string{"Dir": m.Source}
	}
	data := map[string]string{"MergedDir": l.mountPath(id)}
	for _, o := range m.Options {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		switch k {
		case "lowerdir":
			data["LowerDir"] = v
		case "upperdir":
			data["UpperDir"] = v
		case "workdir":
			data["WorkDir"] = v
		}
	}
	return data
}

// Undo unmounts the container's root filesystem if Mount mounted it and removes the
// container's snapshot: at once for a rollback, through the reaper for the removal of a
// registered container (see the package documentation). Shared layers and init layers are
// never removed. It needs rec.ID only; with rec.RootFS it uses the driver and the key
// recorded there, without it every driver that has a store below the root, and the key that
// the pool handed to rec.ID in this process or else rec.ID (a snapshot that a killed
// process handed out is the next start's sweep's, see snapshotPool).
func (l *Layerer) Undo(ctx context.Context, rec *spec.Record) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.ops.Done()
	if err := checkID(rec.ID); err != nil {
		return err
	}
	if err := l.unmount(rec.ID); err != nil {
		return err
	}
	ds, err := l.driversFor(rec)
	if err != nil {
		return err
	}
	// A removal of a registered container leaves the snapshot to the reaper (see reaper); a
	// rollback removes it at once.
	later := !l.opts.noReaper && core.UndoCauseOf(ctx).Remove
	var errs []error
	for _, d := range ds {
		key, err := snapshotKey(d, rec)
		if err != nil {
			return err
		}
		d.touch()
		if later {
			err := d.reaper.put(key)
			if err == nil {
				continue
			}
			l.log.Warn("removing the snapshot now", "key", key, "error", err)
		}
		if err := d.removeActive(ctx, key, l.log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeActive removes the active snapshot key; a missing one is a success.
func (d *driver) removeActive(ctx context.Context, key string, log hclog.Logger) error {
	var dir string
	if d.name == DriverOverlay {
		// The overlay snapshotter removes directories asynchronously (see openDriver): find
		// the snapshot's directory first, and remove it once the metadata is gone.
		ms, err := d.sn.Mounts(ctx, key)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			return classify(err, "find snapshot %s", key)
		}
		dir = overlaySnapshotDir(d, ms)
	}
	if err := d.sn.Remove(ctx, key); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return classify(err, "remove snapshot %s", key)
	}
	if dir != "" {
		if err := d.trash.put(dir); err != nil {
			// The metadata is gone; Sweep's Cleanup removes the directory at the next start.
			log.Warn("removing snapshot directory failed", "dir", dir, "error", err)
		}
	}
	return nil
}

// overlaySnapshotDir finds the directory of an active overlay snapshot from its mounts, or
// "" when they do not name one inside the driver's root.
func overlaySnapshotDir(d *driver, ms []mount.Mount) string {
	if len(ms) != 1 {
		return ""
	}
	upper := ""
	if ms[0].Type == "bind" {
		upper = ms[0].Source
	}
	for _, o := range ms[0].Options {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			upper = v
		}
	}
	if filepath.Base(upper) != "fs" {
		return ""
	}
	dir := filepath.Dir(upper)
	if filepath.Dir(dir) != filepath.Join(d.root, "snapshots") {
		return ""
	}
	return dir
}

// driversFor returns the drivers that may hold rec's snapshot.
func (l *Layerer) driversFor(rec *spec.Record) ([]*driver, error) {
	if rec.RootFS != nil && rec.RootFS.Driver != "" {
		d, err := l.driverNamed(rec.RootFS.Driver)
		if err != nil || d == nil {
			return nil, err
		}
		return []*driver{d}, nil
	}
	ds := []*driver{l.main}
	for _, name := range []string{DriverOverlay, DriverNative} {
		if name == l.main.name {
			continue
		}
		d, err := l.driverNamed(name)
		if err != nil {
			return nil, err
		}
		if d != nil {
			ds = append(ds, d)
		}
	}
	return ds, nil
}

// driverNamed returns the driver called name, opening it if its store exists; nil when it
// has no store (so nothing to find in it).
func (l *Layerer) driverNamed(name string) (*driver, error) {
	if name == l.main.name {
		return l.main, nil
	}
	if name != DriverOverlay && name != DriverNative {
		return nil, errdefs.InvalidArgument(fmt.Errorf("unknown snapshotter %q", name))
	}
	l.othersMu.Lock()
	defer l.othersMu.Unlock()
	if d, ok := l.others[name]; ok {
		return d, nil
	}
	if _, err := os.Stat(filepath.Join(l.root, name, "metadata.db")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, errdefs.Internal(fmt.Errorf("look for the %s snapshotter: %w", name, err))
	}
	d, fresh, err := l.set.acquire(l.root, name, l.opts.noSync, l.log)
	if err != nil {
		return nil, err
	}
	l.others[name] = d
	if fresh {
		// Opened now, so no run of this process uses it: what it holds in progress is a
		// crash's.
		if err := l.sweepDriver(context.Background(), d); err != nil {
			l.log.Warn("sweeping leftover snapshots failed", "driver", name, "error", err)
		}
	}
	return d, nil
}

// Sweep removes the "extract-*" active snapshots that a crashed process left behind, the
// "spare-*" ones that no registered container names (when the stage has a host, see
// snapshotPool), and the directories of removed overlay snapshots and of mount points no
// longer mounted. Only the process that holds the state root may call it, before any run
// uses the stage; the first New of an engine does.
func (l *Layerer) Sweep(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.ops.Done()
	ds, err := l.driversFor(&spec.Record{})
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range ds {
		errs = append(errs, l.sweepDriver(ctx, d))
	}
	errs = append(errs, l.sweepMounts())
	return errors.Join(errs...)
}

// sweepDriver removes d's "extract-*" active snapshots, its "spare-*" ones that no
// registered container names (when the stage has a host), and the directories its metadata
// does not know.
func (l *Layerer) sweepDriver(ctx context.Context, d *driver) error {
	var used map[string]bool
	if l.host != nil {
		recs, err := l.host.Containers(ctx)
		if err != nil {
			l.log.Warn("cannot list the containers; spare snapshots are left for the next start", "error", err)
			recs = nil
		} else {
			used = map[string]bool{}
		}
		for _, r := range recs {
			if r.RootFS != nil && r.RootFS.Key != "" {
				used[r.RootFS.Key] = true
			}
		}
	}
	var stale, spares []string
	err := d.sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		switch {
		case info.Kind == snapshots.KindCommitted:
		case strings.HasPrefix(info.Name, extractPrefix):
			stale = append(stale, info.Name)
		case used != nil && isSpareKey(info.Name) && !used[info.Name]:
			spares = append(spares, info.Name)
		}
		return nil
	})
	if cerrdefs.IsNotFound(err) {
		return nil // a new store: nothing was ever made in it
	}
	if err != nil {
		return classify(err, "list %s snapshots", d.name)
	}
	var errs []error
	for _, key := range stale {
		if err := d.sn.Remove(ctx, key); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, classify(err, "remove leftover snapshot %s", key))
		} else {
			l.log.Info("removed leftover snapshot", "driver", d.name, "key", key)
		}
	}
	if len(spares) > 0 && d.pool != nil {
		// Side by side, so that the removals share their metadata commits.
		rs := make([]readySnapshot, len(spares))
		for i, key := range spares {
			rs[i].key = key
		}
		d.pool.remove(rs)
		l.log.Info("removed spare snapshots no container uses", "driver", d.name, "count", len(spares))
	}
	if c, ok := d.sn.(snapshots.Cleaner); ok {
		if err := c.Cleanup(ctx); err != nil {
			errs = append(errs, classify(err, "clean up %s snapshots", d.name))
		}
	}
	return errors.Join(errs...)
}

// classify gives a snapshotter error a class: NotFound, Conflict for a name in use,
// Canceled and Unavailable for the context, Internal otherwise.
func classify(err error, format string, args ...any) error {
	err = fmt.Errorf(format+": %w", append(args, err)...)
	switch {
	case cerrdefs.IsNotFound(err):
		return errdefs.NotFound(err)
	case cerrdefs.IsAlreadyExists(err):
		return errdefs.Conflict(err)
	case errors.Is(err, context.Canceled):
		return errdefs.Canceled(err)
	case errors.Is(err, context.DeadlineExceeded):
		return errdefs.Unavailable(err)
	}
	return errdefs.Internal(err)
}

var (
	_ core.Layerer = (*Layerer)(nil)
	_ core.Closer  = (*Layerer)(nil)
)
