package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/internal/fsutil"
)

// sparePrefix begins the keys of the active snapshots made ahead for containers (see
// snapshotPool). A container ID (64 hex digits) never begins with it, nor does any key of a
// shared snapshot.
const sparePrefix = "spare-"

// snapshotPool keeps, for the init layers of the images used recently, active overlay
// snapshots that are made and committed ahead of the creates that take them: a create whose
// image has one ready takes it, in memory, and its layer stage writes nothing to the disk.
//
// Why: preparing a container's snapshot costs a commit of the snapshotter's metadata, two
// fsyncs (0.45–0.6 ms of a create's 1.1–1.5 ms on the development machine, the record's
// fsync being the third). The pool makes the snapshots in the background, many in one
// commit, so that a create pays one fsync, its record's, and concurrent creates no longer
// queue for the metadata's. The snapshot is exactly what a prepare on the init layer makes
// (storage.CreateSnapshot, directories fs and work, fs owned like the parent's); only its
// key differs: "spare-<process>-<n>" instead of the container ID, recorded in
// spec.RootFS.Key, which Undo, Mount and the reaper use.
//
// Nothing is left behind:
//   - Undo removes the key recorded in rec.RootFS. The engine gives a stage's output to its
//     Undo also when the run failed after the stage had returned, and an Undo given only
//     the ID finds the key that the pool handed to it in this process (handedKey).
//   - A spare that a crash left (ready in the pool, or taken by a run that never
//     registered) is found by the sweep of the next process: at start-up, the active
//     snapshots named "spare-*" that no registered container's record names are removed.
//     The sweep needs the engine's records (core.Host), so a stage built without a host
//     never makes spares, and never sweeps them either.
//   - Close removes the spares still in the pool; PruneLayers removes them first, since a
//     spare is a child of its init layer and would keep it.
//
// The pool is per parent: the ready snapshots of at most poolParents parents are kept, the
// least recently used parent's are removed when another comes; each parent's pool is
// refilled to poolWant, in one metadata transaction, when it falls to half of it. The first
// creates of an image prepare their snapshots themselves, keyed by their IDs; the second
// starts the pool, so that a process that makes one container (a CLI command) makes none
// ahead.
type snapshotPool struct {
	d      *driver
	prefix string // "spare-<this process>-"
	want   int
	log    hclog.Logger

	mu      sync.Mutex
	parents map[string]*parentPool
	// handed maps the last handedKept containers that took a snapshot to its key, oldest
	// first in handedOrder, so that an Undo given only a container's ID finds it (see
	// handedKey).
	handed      map[string]string
	handedOrder []readyFor
	seq         uint64
	tick        uint64
	paused      int
	closed      bool
	// work counts the fills and removals in the background.
	work sync.WaitGroup
}

// parentPool holds the ready snapshots on one parent.
type parentPool struct {
	ready   []readySnapshot
	filling bool
	used    uint64 // snapshotPool.tick at the last take
	// takes counts the creates that asked: the pool fills from the second on, so that a
	// process that makes one container (a CLI command) makes no spares.
	takes int
	// failed is when the last fill failed; the next waits for fillRetry.
	failed time.Time
}

// readyFor is a hand-out: the key taken by container id.
type readyFor struct{ id, key string }

// readySnapshot is a committed active snapshot and its mounts.
type readySnapshot struct {
	key    string
	mounts []mount.Mount
}

const (
	// poolWant is how many snapshots a parent's pool keeps ready.
	poolWant = 64
	// poolParents is how many parents have a pool.
	poolParents = 8
	// handedKept is how many hand-outs handedKey remembers.
	handedKept = 4096
	// fillRetry is how long a parent's pool waits after a failed fill.
	fillRetry = time.Second
)

func newSnapshotPool(d *driver, want int, log hclog.Logger) (*snapshotPool, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("snapshot pool: %w", err)
	}
	return &snapshotPool{d: d, prefix: sparePrefix + hex.EncodeToString(b[:]) + "-", want: want, log: log,
		parents: map[string]*parentPool{}, handed: map[string]string{}}, nil
}

// isSpareKey reports whether key names a snapshot made by a pool.
func isSpareKey(key string) bool {
	return strings.HasPrefix(key, sparePrefix) && !strings.ContainsAny(key, ":/")
}

// take returns a ready snapshot on parent for container id, and false when there is none;
// it starts a fill when parent's pool runs low (or is new). nil-safe.
func (p *snapshotPool) take(parent, id string) (readySnapshot, bool) {
	if p == nil {
		return readySnapshot{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.paused > 0 {
		return readySnapshot{}, false
	}
	p.tick++
	pp := p.parents[parent]
	if pp == nil {
		pp = &parentPool{}
		p.evictLocked()
		p.parents[parent] = pp
	}
	pp.used = p.tick
	pp.takes++
	n := len(pp.ready)
	if n <= p.want/2 && !pp.filling && pp.takes > 1 && time.Since(pp.failed) >= fillRetry {
		pp.filling = true
		p.work.Add(1)
		go p.fill(parent, pp)
	}
	if n == 0 {
		return readySnapshot{}, false
	}
	s := pp.ready[n-1]
	pp.ready = pp.ready[:n-1]
	if len(p.handedOrder) >= handedKept {
		if h := p.handedOrder[0]; p.handed[h.id] == h.key {
			delete(p.handed, h.id)
		}
		p.handedOrder = p.handedOrder[1:]
	}
	p.handed[id] = s.key
	p.handedOrder = append(p.handedOrder, readyFor{id, s.key})
	return s, true
}

// handedKey returns the key of the snapshot that container id took, if it is among the
// last handedKept to take one. An Undo that has only the ID (a run cut short before its
// output was recorded) finds it here within the process; after a crash the sweep of the
// next start removes it. nil-safe.
func (p *snapshotPool) handedKey(id string) string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handed[id]
}

// evictLocked drops the least recently used parent's pool when poolParents have one, and
// removes its snapshots in the background.
func (p *snapshotPool) evictLocked() {
	if len(p.parents) < poolParents {
		return
	}
	var (
		oldest string
		at     uint64
	)
	for k, pp := range p.parents {
		if oldest == "" || pp.used < at {
			oldest, at = k, pp.used
		}
	}
	p.removeLater(p.parents[oldest].ready)
	delete(p.parents, oldest)
}

// removeLater removes snapshots in the background.
func (p *snapshotPool) removeLater(rs []readySnapshot) {
	if len(rs) == 0 {
		return
	}
	p.work.Add(1)
	go func() {
		defer p.work.Done()
		p.remove(rs)
	}()
}

// remove removes snapshots, side by side so that their metadata commits are shared.
func (p *snapshotPool) remove(rs []readySnapshot) {
	var wg sync.WaitGroup
	for _, s := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.d.removeActive(context.Background(), s.key, p.log); err != nil {
				p.log.Warn("cannot remove a spare snapshot; the next start removes it", "key", s.key, "error", err)
			}
		}()
	}
	wg.Wait()
}

// fill makes snapshots on parent, as many as the pool lacks of want in one transaction,
// until the pool holds more than half of want. It stops at the first failure (the next
// take tries again), and when the pool is closed or paused, or the parent evicted: what it
// made then is removed.
func (p *snapshotPool) fill(parent string, pp *parentPool) {
	defer p.work.Done()
	for {
		p.mu.Lock()
		if p.closed || p.paused > 0 || p.parents[parent] != pp || len(pp.ready) > p.want/2 {
			pp.filling = false
			p.mu.Unlock()
			return
		}
		keys := make([]string, p.want-len(pp.ready))
		for i := range keys {
			p.seq++
			keys[i] = p.prefix + strconv.FormatUint(p.seq, 10)
		}
		p.mu.Unlock()
		made, err := p.makeSnapshots(parent, keys)
		p.mu.Lock()
		if p.closed || p.paused > 0 || p.parents[parent] != pp {
			pp.filling = false
			p.mu.Unlock()
			p.remove(made)
			return
		}
		pp.ready = append(pp.ready, made...)
		if err != nil {
			pp.filling, pp.failed = false, time.Now()
			p.mu.Unlock()
			p.log.Warn("cannot make spare snapshots", "parent", parent, "error", err)
			return
		}
		p.mu.Unlock()
	}
}

// makeSnapshots prepares the snapshots keys on parent in one metadata transaction (one commit for
// all of them), each as createFromSpare prepares one (createInTx: containerd's
// storage.CreateSnapshot, a chown of fs to the owner of the parent's, and a rename into
// snapshots/<ID>), from directories made beforehand below spare/, which opening the driver
// empties. It returns their mounts.
func (p *snapshotPool) makeSnapshots(parent string, keys []string) ([]readySnapshot, error) {
	err := p.makeSnapshotsOnce(parent, keys)
	for i := 0; errors.Is(err, errGroupAborted) && i < maxGroupRetries; i++ {
		err = p.makeSnapshotsOnce(parent, keys)
	}
	if err != nil {
		return nil, err
	}
	out := make([]readySnapshot, len(keys))
	for i, key := range keys {
		ms, err := p.d.sn.Mounts(context.Background(), key)
		if err != nil {
			p.remove(readyKeys(keys))
			return nil, fmt.Errorf("mounts of spare snapshot %s: %w", key, err)
		}
		out[i] = readySnapshot{key: key, mounts: ms}
	}
	return out, nil
}

func readyKeys(keys []string) []readySnapshot {
	out := make([]readySnapshot, len(keys))
	for i, k := range keys {
		out[i].key = k
	}
	return out
}

// makeSnapshotsOnce is one try of makeSnapshots; on failure it removes the directories it made.
func (p *snapshotPool) makeSnapshotsOnce(parent string, keys []string) (err error) {
	d := p.d
	snapshotDir := filepath.Join(d.root, "snapshots")
	dirs := make([]string, len(keys)) // where each directory is
	defer func() {
		if err != nil {
			for _, dir := range dirs {
				if dir == "" {
					continue
				}
				if rerr := os.RemoveAll(dir); rerr != nil {
					d.log.Warn("cannot remove the directory of a snapshot not created", "dir", dir, "error", rerr)
				}
			}
		}
	}()
	for i := range keys {
		p.mu.Lock()
		p.seq++
		td := filepath.Join(d.spares.dir, p.prefix+"d"+strconv.FormatUint(p.seq, 10))
		p.mu.Unlock()
		dirs[i] = td
		if err := makeSnapshotDir(td); err != nil {
			return err
		}
	}
	placed := make([]string, len(keys))
	err = d.ms.WithTransaction(context.Background(), true, func(ctx context.Context) error {
		for i, key := range keys {
			dst, err := createInTx(ctx, snapshotDir, key, parent, dirs[i])
			if err != nil {
				return err
			}
			placed[i] = dst
		}
		// The renames must be on disk before the metadata that names the new directories
		// is committed. In the background, one fsync for the whole batch.
		if d.noSync {
			return nil
		}
		return fsutil.SyncDir(snapshotDir)
	})
	// On failure the deferred clean-up removes each directory where it is now.
	for i := range dirs {
		if placed[i] != "" {
			dirs[i] = placed[i]
		}
	}
	return err
}

// pause empties the pool, waits for the work in the background and keeps the pool empty
// until resume is called: for PruneLayers, since a spare keeps its parent. nil-safe.
func (p *snapshotPool) pause() (resume func()) {
	if p == nil {
		return func() {}
	}
	p.mu.Lock()
	p.paused++
	rs := p.emptyLocked()
	p.mu.Unlock()
	p.remove(rs)
	p.work.Wait()
	return func() {
		p.mu.Lock()
		p.paused--
		p.mu.Unlock()
	}
}

// close empties the pool for good, removing its snapshots, and waits for the work in the
// background. nil-safe.
func (p *snapshotPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	rs := p.emptyLocked()
	p.mu.Unlock()
	p.remove(rs)
	p.work.Wait()
}

// emptyLocked takes every ready snapshot out of the pool.
func (p *snapshotPool) emptyLocked() []readySnapshot {
	var rs []readySnapshot
	for k, pp := range p.parents {
		rs = append(rs, pp.ready...)
		pp.ready = nil
		delete(p.parents, k)
	}
	return rs
}
