// Package volumes is Slipway's local volume store: the "local" volume driver of moby, with
// its layout and its messages.
//
// A volume's data is the directory <root>/volumes/<name>/_data. Its metadata (driver, creation
// time, labels, options, whether it is anonymous and which create made it) is kept in the
// bucket "volumes" of the engine's state database, and in memory.
//
// Which containers use a volume is derived state, like the address leases of the IPAM: it is
// held in memory, rebuilt at start-up from the mount points of the registered containers, and
// extended by the creates in flight. A crash therefore cannot leave a volume referenced by
// nobody, and using a volume costs no write.
//
// The metadata of a volume names the create that made it (CreatedBy). It is written before
// the volume's directory is made, so that the undo of a create cut short by a crash finds the
// volumes the create made from its ID alone and removes them: moby keeps them (issues #16285,
// #22093).
//
// One Store serves an engine (Open shares it through core.Env.Shared); it is safe for
// concurrent use.
package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
)

// DriverLocal is the name of the only driver: volumes are directories below the state root.
const DriverLocal = "local"

const (
	bucket    = "volumes"
	sharedKey = "volumes/store"
)

// Volume is a volume as the store keeps it.
type Volume struct {
	Name   string
	Driver string
	// Mountpoint is the volume's data directory, <root>/volumes/<name>/_data.
	Mountpoint string `json:"-"`
	CreatedAt  time.Time
	Labels     map[string]string `json:",omitempty"`
	Options    map[string]string `json:",omitempty"`
	// Anonymous is set for a volume that was given a generated name (an image's VOLUME,
	// `-v /path`, `--mount type=volume` without a source); `rm -v` removes those.
	Anonymous bool `json:",omitempty"`
	// CreatedBy is the ID of the create that made the volume while that create is not known
	// to have finished; the undo of that create removes the volume when nobody uses it.
	CreatedBy string `json:",omitempty"`
}

// CreateOptions say how to make a volume that does not exist yet.
type CreateOptions struct {
	// Driver is "local" or empty.
	Driver    string
	Labels    map[string]string
	Options   map[string]string
	Anonymous bool
	// CreatedBy is the ID of the create that makes the volume (see Volume.CreatedBy).
	CreatedBy string
}

// Store is the local volume store of an engine.
type Store struct {
	dir string
	db  *bolt.DB
	log hclog.Logger

	// events logs the volume events, moby's LogVolumeEvent; nil logs none.
	events core.EventSink

	mu    sync.Mutex
	vols  map[string]*Volume
	users map[string]map[string]struct{} // volume name -> container IDs
	byID  map[string]map[string]struct{} // container ID -> volume names
}

// Open returns the engine's store, made on first use from env (the state root, database and
// registered containers) and shared by every stage instance and command of the engine.
func Open(ctx context.Context, env core.Env) (*Store, error) {
	make := func() (any, error) { return New(ctx, env.Root, env.DB, env.Host, env.Logger, WithEvents(env.Events)) }
	if env.Shared == nil {
		s, err := make()
		if err != nil {
			return nil, err
		}
		return s.(*Store), nil
	}
	v, err := env.Shared.Get(sharedKey, make)
	if err != nil {
		return nil, err
	}
	return v.(*Store), nil
}

// Option configures a Store.
type Option func(*Store)

// WithEvents makes the store log the events moby's volume store logs, whoever asked for the
// change (docker volume create/rm/prune, a container create that makes a volume, rm -v, the
// undo of a create): "create" when it makes a volume and "destroy" when it removes one, each
// of type "volume" with the volume's name as Actor ID and its driver as attribute "driver";
// and "prune" with no Actor ID and the bytes reclaimed as attribute "reclaimed" after a
// prune. Open gives it the engine's event log (core.Env.Events).
func WithEvents(sink core.EventSink) Option {
	return func(s *Store) { s.events = sink }
}

// New builds a store of its own below root in db, with the references of the containers
// host knows (host may be nil). Within an engine, use Open.
func New(ctx context.Context, root string, db *bolt.DB, host core.Host, log hclog.Logger, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errdefs.FailedPrecondition(errors.New("volume store needs the state database"))
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Store{dir: filepath.Join(root, "volumes"), db: db, log: log,
		vols: map[string]*Volume{}, users: map[string]map[string]struct{}{}, byID: map[string]map[string]struct{}{}}
	for _, o := range opts {
		o(s)
	}
	// moby's local driver makes its root 0701: users can reach a volume they know, not list them.
	if err := os.MkdirAll(s.dir, 0o701); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("make volumes directory: %w", err))
	}
	// Reading is enough once the bucket exists; only the first open of a state root pays a
	// (fsynced) write to make it.
	missing := false
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if missing = b == nil; missing {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var vol Volume
			if err := json.Unmarshal(v, &vol); err != nil {
				return fmt.Errorf("volume %s: %w", k, err)
			}
			vol.Name = string(k)
			vol.Mountpoint = s.dataPath(vol.Name)
			s.vols[vol.Name] = &vol
			return nil
		})
	})
	if err == nil && missing {
		err = db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists([]byte(bucket))
			return err
		})
	}
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("load volumes: %w", err))
	}
	if host != nil {
		recs, err := host.Containers(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.Dirs == nil {
				continue
			}
			for _, m := range r.Dirs.Mounts {
				if m.Type == mount.TypeVolume && m.Name != "" {
					if _, ok := s.vols[m.Name]; !ok {
						log.Warn("container uses a volume the store does not know", "container", r.ID, "volume", m.Name)
						continue
					}
					s.ref(m.Name, r.ID)
				}
			}
		}
	}
	return s, nil
}

func (s *Store) dataPath(name string) string { return filepath.Join(s.dir, name, "_data") }

// Dir returns the directory that holds the volumes.
func (s *Store) Dir() string { return s.dir }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks name with the rule and messages of moby's local driver.
func ValidateName(name string) error {
	if len(name) == 1 {
		return errdefs.InvalidArgument(errors.New("volume name is too short, names should be at least two alphanumeric characters"))
	}
	if !nameRE.MatchString(name) {
		return errdefs.InvalidArgument(fmt.Errorf(`%q includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`, name))
	}
	return nil
}

// NewAnonymousName returns a fresh name for an anonymous volume: 64 random hex digits, as
// moby generates them.
func NewAnonymousName() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func opError(op, name string, err error) error {
	if name == "" {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

func copyVolume(v *Volume) Volume {
	c := *v
	if v.Labels != nil {
		c.Labels = make(map[string]string, len(v.Labels))
		for k, x := range v.Labels {
			c.Labels[k] = x
		}
	}
	if v.Options != nil {
		c.Options = make(map[string]string, len(v.Options))
		for k, x := range v.Options {
			c.Options[k] = x
		}
	}
	return c
}

// create makes the volume; s.mu is held. The metadata goes to disk before the directory, so
// that whoever undoes the create finds the directory through it.
func (s *Store) create(name string, o CreateOptions) (*Volume, error) {
	if o.Driver != "" && o.Driver != DriverLocal {
		return nil, errdefs.NotFound(opError("create", name, fmt.Errorf("error looking up volume plugin %s: plugin %q not found", o.Driver, o.Driver)))
	}
	if err := ValidateName(name); err != nil {
		return nil, opError("create", name, err)
	}
	for k := range o.Options {
		return nil, errdefs.InvalidArgument(opError("create", name, fmt.Errorf("invalid option: %q", k)))
	}
	v := &Volume{Name: name, Driver: DriverLocal, Mountpoint: s.dataPath(name), CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: o.Labels, Options: o.Options, Anonymous: o.Anonymous, CreatedBy: o.CreatedBy}
	if err := s.put(v); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(v.Mountpoint), 0o701); err == nil {
		err = os.Mkdir(v.Mountpoint, 0o755)
		if err == nil || errors.Is(err, os.ErrExist) {
			err = os.Chmod(v.Mountpoint, 0o755)
		}
		if err != nil {
			s.del(name)
			return nil, errdefs.Internal(opError("create", name, err))
		}
	} else {
		s.del(name)
		return nil, errdefs.Internal(opError("create", name, err))
	}
	s.vols[name] = v
	s.emit(v.Name, "create", map[string]string{"driver": v.Driver})
	return v, nil
}

// emit logs a volume event; a failure is logged, the change having happened.
func (s *Store) emit(name, action string, attrs map[string]string) {
	if s.events == nil {
		return
	}
	if err := s.events.Emit(core.Event{Type: "volume", Action: action, ID: name, Attrs: attrs}); err != nil {
		s.log.Warn("volume event not logged", "action", action, "volume", name, "error", err)
	}
}

func (s *Store) put(v *Volume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return errdefs.Internal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put([]byte(v.Name), b) }); err != nil {
		return errdefs.Internal(opError("save volume", v.Name, err))
	}
	return nil
}

func (s *Store) del(name string) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Delete([]byte(name)) }); err != nil {
		return errdefs.Internal(opError("remove", name, err))
	}
	return nil
}

func (s *Store) ref(name, id string) {
	if s.users[name] == nil {
		s.users[name] = map[string]struct{}{}
	}
	s.users[name][id] = struct{}{}
	if s.byID[id] == nil {
		s.byID[id] = map[string]struct{}{}
	}
	s.byID[id][name] = struct{}{}
}

// Create makes the volume name (a generated name when empty) unless it exists, and returns
// it; an existing volume is returned as it is, as moby does.
func (s *Store) Create(ctx context.Context, name string, o CreateOptions) (Volume, error) {
	if name == "" {
		name, o.Anonymous = NewAnonymousName(), true
	}
	if o.Driver != "" && o.Driver != DriverLocal {
		// moby looks the driver up before it looks for the volume.
		return Volume{}, errdefs.NotFound(opError("create", name, fmt.Errorf("error looking up volume plugin %s: plugin %q not found", o.Driver, o.Driver)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.vols[name]; ok {
		return copyVolume(v), nil
	}
	v, err := s.create(name, o)
	if err != nil {
		return Volume{}, err
	}
	return copyVolume(v), nil
}

// Acquire makes container id a user of the volume name, making the volume with o when it
// does not exist (created reports that), in one step: a removal cannot come between.
func (s *Store) Acquire(ctx context.Context, name, id string, o CreateOptions) (v Volume, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vol, ok := s.vols[name]
	if !ok {
		if vol, err = s.create(name, o); err != nil {
			return Volume{}, false, err
		}
		created = true
	} else if o.Driver != "" && o.Driver != vol.Driver {
		return Volume{}, false, errdefs.Conflict(opError("create", name, fmt.Errorf("volume name is already in use with a different driver %q", vol.Driver)))
	}
	s.ref(name, id)
	return copyVolume(vol), created, nil
}

// AcquireExisting makes container id a user of the volume name, which must exist (NotFound
// "get NAME: no such volume" otherwise).
func (s *Store) AcquireExisting(ctx context.Context, name, id string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vol, ok := s.vols[name]
	if !ok {
		return Volume{}, errdefs.NotFound(opError("get", name, errors.New("no such volume")))
	}
	s.ref(name, id)
	return copyVolume(vol), nil
}

// Retain drops the references of container id to every volume not in keep.
func (s *Store) Retain(id string, keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.byID[id] {
		if !keep[name] {
			s.unref(name, id)
		}
	}
}

func (s *Store) unref(name, id string) {
	delete(s.users[name], id)
	if len(s.users[name]) == 0 {
		delete(s.users, name)
	}
	delete(s.byID[id], name)
	if len(s.byID[id]) == 0 {
		delete(s.byID, id)
	}
}

// Release drops every reference of container id and returns the names it used.
func (s *Store) Release(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name := range s.byID[id] {
		names = append(names, name)
		s.unref(name, id)
	}
	sort.Strings(names)
	return names
}

// Get returns the volume name; NotFound "get NAME: no such volume" when there is none.
func (s *Store) Get(name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return Volume{}, errdefs.NotFound(opError("get", name, errors.New("no such volume")))
	}
	return copyVolume(v), nil
}

// List returns every volume, by name.
func (s *Store) List() []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Volume, 0, len(s.vols))
	for _, v := range s.vols {
		out = append(out, copyVolume(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Users returns the IDs of the containers (registered or being created) that use name.
func (s *Store) Users(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usersLocked(name)
}

func (s *Store) usersLocked(name string) []string {
	ids := make([]string, 0, len(s.users[name]))
	for id := range s.users[name] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// CreatedBy returns the volumes whose CreatedBy is id.
func (s *Store) CreatedBy(id string) []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Volume
	for _, v := range s.vols {
		if v.CreatedBy == id {
			out = append(out, copyVolume(v))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove removes the volume name. It refuses a volume in use with moby's Conflict "remove
// NAME: volume is in use - [ID...]"; NotFound "get NAME: no such volume" when there is none.
func (s *Store) Remove(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vols[name]; !ok {
		return errdefs.NotFound(opError("get", name, errors.New("no such volume")))
	}
	if u := s.usersLocked(name); len(u) > 0 {
		return errdefs.Conflict(opError("remove", name, fmt.Errorf("volume is in use - %v", u)))
	}
	return s.removeLocked(name)
}

// removeLocked removes the data, then the metadata: a crash in between leaves the metadata,
// through which the removal is found and finished again.
func (s *Store) removeLocked(name string) error {
	if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
		return errdefs.Internal(opError("remove", name, err))
	}
	if err := s.del(name); err != nil {
		return err
	}
	driver := DriverLocal
	if v := s.vols[name]; v != nil && v.Driver != "" {
		driver = v.Driver
	}
	delete(s.vols, name)
	s.emit(name, "destroy", map[string]string{"driver": driver})
	return nil
}

// RemoveIfUnused removes name when nobody uses it and, when createdBy is not empty, only if
// the create createdBy made it. A volume made by createdBy that is still in use is handed
// over to one of its users (CreatedBy set to that user), so that the undo of a create that
// used it and failed in turn removes it. It reports whether the volume is gone.
func (s *Store) RemoveIfUnused(ctx context.Context, name, createdBy string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return true, nil
	}
	if createdBy != "" && v.CreatedBy != createdBy {
		return false, nil
	}
	if u := s.usersLocked(name); len(u) > 0 {
		if createdBy != "" {
			c := copyVolume(v)
			c.CreatedBy = u[0]
			if err := s.put(&c); err != nil {
				return false, err
			}
			v.CreatedBy = u[0]
		}
		return false, nil
	}
	return true, s.removeLocked(name)
}

// Prune removes the anonymous volumes nobody uses (with all, the named ones too) and returns
// their names.
func (s *Store) Prune(ctx context.Context, all bool) ([]string, error) {
	names, _, err := s.PruneFunc(ctx, func(v Volume) bool { return v.Anonymous || all })
	return names, err
}

// PruneFunc removes the volumes nobody uses, without driver options, for which match is
// true, as moby's prune chooses them; it returns their names and the bytes their data took.
// match is called with the store locked: it must not call the store.
func (s *Store) PruneFunc(ctx context.Context, match func(Volume) bool) (names []string, reclaimed uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cands []string
	for name, v := range s.vols {
		if len(s.users[name]) == 0 && len(v.Options) == 0 && match(copyVolume(v)) {
			cands = append(cands, name)
		}
	}
	sort.Strings(cands)
	var errs []error
	for _, name := range cands {
		if err := ctx.Err(); err != nil {
			errs = append(errs, errdefs.Canceled(err))
			break
		}
		size := dirSize(s.vols[name].Mountpoint)
		if err := s.removeLocked(name); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, name)
		reclaimed += size
	}
	if ctx.Err() == nil {
		// moby's VolumesService.Prune logs it after the removals, also when none was made.
		s.emit("", "prune", map[string]string{"reclaimed": strconv.FormatUint(reclaimed, 10)})
	}
	return names, reclaimed, errors.Join(errs...)
}

// dirSize is the bytes of the regular files below dir, as moby's directory.Size counts them
// (each hard-linked inode once); what cannot be read counts nothing.
func dirSize(dir string) uint64 {
	var n uint64
	seen := map[[2]uint64]bool{}
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		n += uint64(fi.Size())
		return nil
	})
	return n
}

// AnonymousLabel is the label moby puts on a volume made without a name; Slipway shows it on
// its anonymous volumes (Volume.Anonymous) and prune selects by it.
const AnonymousLabel = "com.docker.volume.anonymous"

// API renders v as the Engine API and docker volume inspect show it: scope local, the
// anonymous label on anonymous volumes, empty maps rather than null.
func (v Volume) API() volume.Volume {
	out := volume.Volume{Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt.Format(time.RFC3339),
		Labels: map[string]string{}, Options: map[string]string{}, Scope: "local"}
	for k, x := range v.Labels {
		out.Labels[k] = x
	}
	for k, x := range v.Options {
		out.Options[k] = x
	}
	if v.Anonymous {
		out.Labels[AnonymousLabel] = ""
	}
	return out
}
