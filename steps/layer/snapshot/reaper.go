package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// reaper removes the snapshots of removed containers in the background, in batches.
//
// Why: removing a snapshot costs a commit of the snapshotter's metadata database, two
// fsyncs (0.45–0.6 ms on the development machine), and was most of a container's removal.
// The removal's durable step is the engine's: the record's deletion in the record log. A
// removal's Undo therefore only notes the container's key in <driver root>/removing (one
// append, no fsync, which the page cache keeps when the process dies) and returns; the
// reaper removes the snapshots once the layer stage pauses (reapIdle without a prepare or
// removal, as the trash does), or at once past reapBacklog keys, reapBatch at a time, which
// the metadata store commits together (groupStore): a burst of removals shares fsyncs
// instead of paying two each. It is what containerd does with its garbage collector: the
// metadata says a snapshot is gone, the snapshotter catches up.
//
// Nothing is lost: a process that dies with keys noted reads the file when it opens the
// driver again and removes them (a key already gone is a success), and the file is
// emptied whenever nothing is left to remove. A Prepare of a key that the file names removes
// the old snapshot first, or waits for its removal, and rewrites the file without the key
// (take), so that the key can be used again and a crash cannot take the new snapshot for the
// old one. Close of the driver waits for the reaper.
// Rollbacks of failed creates do not come here: they remove at once, as before.
type reaper struct {
	path   string
	remove func(ctx context.Context, key string) error
	log    hclog.Logger
	// busy is when a snapshot was last prepared or removed (UnixNano), see touch.
	busy atomic.Int64
	// backlog is reapBacklog (tests lower it).
	backlog int
	// nNamed is len(named), for take's fast path.
	nNamed atomic.Int64

	mu sync.Mutex
	f  *os.File
	// state holds the keys to remove: nil while a key waits, a channel (closed when done)
	// while it is being removed.
	state   map[string]chan struct{}
	queue   []string
	running bool
	// stopped is closed when the running worker exits.
	stopped chan struct{}
	// hurry counts the callers of wait: the worker does not wait for a pause meanwhile.
	hurry int
	// failed holds the keys whose removal failed: the file keeps them for the next start.
	failed map[string]bool
	// named holds the keys the file names.
	named map[string]bool
}

const (
	// reapIdle is the pause in the layer stage's calls after which the reaper works.
	reapIdle = 200 * time.Millisecond
	// reapBacklog is how many keys may wait before the reaper works without a pause.
	reapBacklog = 256
	// reapBatch is how many snapshots the reaper removes at once.
	reapBatch = 16
	// reapFile is the name of the file of keys to remove, in the driver's root.
	reapFile = "removing"
)

// newReaper opens the reaper's file below driverRoot and queues the keys that an earlier
// process noted and did not remove.
func newReaper(driverRoot string, remove func(context.Context, string) error, log hclog.Logger) (*reaper, error) {
	r := &reaper{
		path:    filepath.Join(driverRoot, reapFile),
		remove:  remove,
		log:     log,
		backlog: reapBacklog,
		state:   map[string]chan struct{}{},
		failed:  map[string]bool{},
		named:   map[string]bool{},
	}
	data, err := os.ReadFile(r.path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if r.f, err = os.OpenFile(r.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// A line cut short by a crash is a key that no snapshot has: removing it is a no-op.
		if key := sc.Text(); key != "" {
			if _, ok := r.state[key]; !ok {
				r.state[key] = nil
				r.named[key] = true
				r.queue = append(r.queue, key)
			}
		}
	}
	r.nNamed.Store(int64(len(r.named)))
	if len(r.queue) > 0 {
		log.Info("removing the snapshots of containers removed before the last stop", "count", len(r.queue))
		r.startLocked()
	}
	return r, nil
}

// touch notes that a snapshot is being prepared or removed; nil-safe.
func (r *reaper) touch() {
	if r != nil {
		r.busy.Store(time.Now().UnixNano())
	}
}

// put notes key for removal in the background. An error means the key could not be noted,
// and the caller must remove it itself.
func (r *reaper) put(key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return fmt.Errorf("snapshot reaper of %s is closed", filepath.Dir(r.path))
	}
	if _, ok := r.state[key]; ok {
		return nil
	}
	if _, err := r.f.WriteString(key + "\n"); err != nil {
		return fmt.Errorf("note snapshot %s for removal: %w", key, err)
	}
	r.state[key] = nil
	r.named[key] = true
	r.nNamed.Store(int64(len(r.named)))
	r.queue = append(r.queue, key)
	if !r.running {
		r.startLocked()
	}
	return nil
}

// startLocked starts the worker.
func (r *reaper) startLocked() {
	r.running = true
	r.stopped = make(chan struct{})
	go r.work(r.stopped)
}

// take makes sure that key is neither waiting for removal nor named by the file, for
// PrepareRootFS to use it again: it removes the old snapshot now when it waits, or waits for
// the removal in progress, then rewrites the file without the key.
func (r *reaper) take(ctx context.Context, key string) error {
	if r == nil || r.nNamed.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	if !r.named[key] {
		r.mu.Unlock()
		return nil
	}
	ch, waiting := r.state[key]
	switch {
	case waiting && ch != nil:
		// The worker is removing it.
		r.mu.Unlock()
		<-ch
	case waiting:
		ch = make(chan struct{})
		r.state[key] = ch
		r.mu.Unlock()
		err := r.remove(ctx, key)
		r.finish(key, ch, err)
		if err != nil {
			return err
		}
	default:
		// Removed already (or failed, below); the file still names it.
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed[key] {
		return fmt.Errorf("the earlier snapshot %s could not be removed (see the log)", key)
	}
	// A crash must not have the next start remove the new snapshot.
	return r.rewriteLocked()
}

// finish ends the removal of key.
func (r *reaper) finish(key string, ch chan struct{}, err error) {
	r.mu.Lock()
	delete(r.state, key)
	delete(r.failed, key)
	if err != nil {
		r.failed[key] = true
		r.log.Warn("cannot remove a removed container's snapshot; the next start retries", "key", key, "error", err)
	}
	r.mu.Unlock()
	close(ch)
}

func (r *reaper) work(stopped chan struct{}) {
	defer close(stopped)
	ctx := context.Background()
	for {
		r.mu.Lock()
		// Drop the keys that take removed or is removing.
		for len(r.queue) > 0 {
			if ch, ok := r.state[r.queue[0]]; ok && ch == nil {
				break
			}
			r.queue = r.queue[1:]
		}
		if len(r.queue) == 0 {
			r.running = false
			if len(r.state) == 0 {
				if err := r.rewriteLocked(); err != nil {
					r.log.Warn("cannot empty the file of snapshots to remove", "error", err)
				}
			}
			r.mu.Unlock()
			return
		}
		if r.hurry == 0 && len(r.queue) < r.backlog {
			if idle := time.Since(time.Unix(0, r.busy.Load())); idle < reapIdle {
				r.mu.Unlock()
				time.Sleep(reapIdle - idle)
				continue
			}
		}
		type job struct {
			key string
			ch  chan struct{}
		}
		var batch []job
		for len(r.queue) > 0 && len(batch) < reapBatch {
			key := r.queue[0]
			r.queue = r.queue[1:]
			if ch, ok := r.state[key]; !ok || ch != nil {
				continue
			}
			ch := make(chan struct{})
			r.state[key] = ch
			batch = append(batch, job{key, ch})
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, j := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.finish(j.key, j.ch, r.remove(ctx, j.key))
			}()
		}
		wg.Wait()
	}
}

// rewriteLocked rewrites the file with the keys still to remove and those whose removal
// failed: emptied when there are none, else replaced by a complete new file (a rename), so
// that a crash never finds it half-written.
func (r *reaper) rewriteLocked() error {
	if r.f == nil {
		return nil
	}
	named := map[string]bool{}
	var buf bytes.Buffer
	for key := range r.state {
		named[key] = true
		buf.WriteString(key + "\n")
	}
	for key := range r.failed {
		if !named[key] {
			named[key] = true
			buf.WriteString(key + "\n")
		}
	}
	if buf.Len() == 0 {
		if err := r.f.Truncate(0); err != nil {
			return fmt.Errorf("empty %s: %w", r.path, err)
		}
		r.setNamed(named)
		return nil
	}
	tmp := r.path + ".new"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("rewrite %s: %w", r.path, err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", r.path, err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		f.Close()
		return fmt.Errorf("rewrite %s: %w", r.path, err)
	}
	r.f.Close()
	r.f = f
	r.setNamed(named)
	return nil
}

// setNamed records what the file names after a rewrite; a failed rewrite leaves the
// earlier set, a superset, so that take tries again.
func (r *reaper) setNamed(named map[string]bool) {
	r.named = named
	r.nNamed.Store(int64(len(named)))
}

// wait removes the waiting keys now and returns when the worker has nothing left to do
// (keys noted meanwhile may make it run again).
func (r *reaper) wait() {
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return
	}
	r.hurry++
	stopped := r.stopped
	r.mu.Unlock()
	<-stopped
	r.mu.Lock()
	r.hurry--
	r.mu.Unlock()
}

// close waits for the reaper and closes its file; put fails afterwards.
func (r *reaper) close() error {
	for {
		r.wait()
		r.mu.Lock()
		if !r.running {
			break
		}
		r.mu.Unlock()
	}
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
