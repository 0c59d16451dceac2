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
// emptied whenever nothing is left to remove. A Prepare of a key that is waiting removes it
// first (take), so that the key can be used again. Close of the driver waits for the reaper.
// Rollbacks of failed creates do not come here: they remove at once, as before.
type reaper struct {
	path   string
	remove func(ctx context.Context, key string) error
	log    hclog.Logger
	// busy is when a snapshot was last prepared or removed (UnixNano), see touch.
	busy atomic.Int64
	// backlog is reapBacklog (tests lower it).
	backlog int
	// n is len(state), for take's fast path.
	n atomic.Int64

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
				r.queue = append(r.queue, key)
			}
		}
	}
	r.n.Store(int64(len(r.state)))
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
	r.n.Add(1)
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

// take makes sure that key is not waiting for removal: it removes it now when it waits, or
// waits for the removal in progress. PrepareRootFS calls it before using a key.
func (r *reaper) take(ctx context.Context, key string) error {
	if r == nil || r.n.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	ch, ok := r.state[key]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	if ch != nil {
		r.mu.Unlock()
		<-ch
		return nil
	}
	ch = make(chan struct{})
	r.state[key] = ch
	r.mu.Unlock()
	err := r.remove(ctx, key)
	r.finish(key, ch, err)
	if err != nil {
		return err
	}
	// The key is about to be used again: the file must stop naming it, or a crash would
	// have the next start remove the new snapshot.
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rewriteLocked()
}

// finish ends the removal of key.
func (r *reaper) finish(key string, ch chan struct{}, err error) {
	r.mu.Lock()
	delete(r.state, key)
	r.n.Add(-1)
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
	var buf bytes.Buffer
	for key := range r.state {
		buf.WriteString(key + "\n")
	}
	for key := range r.failed {
		if _, ok := r.state[key]; !ok {
			buf.WriteString(key + "\n")
		}
	}
	if buf.Len() == 0 {
		if err := r.f.Truncate(0); err != nil {
			return fmt.Errorf("empty %s: %w", r.path, err)
		}
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
	return nil
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
