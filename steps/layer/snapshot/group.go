package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	bolt "go.etcd.io/bbolt"
)

// groupStore is the overlay snapshotter's metadata store with group commit: the write
// transactions of concurrent callers run one after the other inside one bbolt transaction,
// committed (two fsyncs) once for all of them. A lone caller commits at once, as before;
// callers that arrive while a commit is in flight are served together by the next one.
// Without it the snapshotter holds bbolt's writer lock for each create's directories and
// both fsyncs, so parallel creates queue behind each other's disk flushes.
//
// The callbacks of a group of several run side by side, each on its own goroutine, and
// take turns with the transaction: the overlay snapshotter's directory work for the
// snapshots of a group then overlaps, and only its metadata writes, chown and rename are
// serial (see runSideBySide). A lone call runs on the caller's goroutine.
//
// A callback that fails cannot be rolled back alone (bbolt has no savepoints). The group's
// transaction is then rolled back: the failing caller gets its own error, the other callers
// get errGroupAborted (their snapshotter calls clean up what they made, and
// groupSnapshotter calls them again). Whenever a transaction is rolled back or fails to
// commit, the snapshot ID sequence is first moved past every ID it handed out, so that a
// caller's clean-up of the directory it made (snapshots/<ID>) can never meet a new snapshot
// given the same ID.
type groupStore struct {
	inner *storage.MetaStore

	mu      sync.Mutex
	pending []*groupCall
	leading bool
	// groups counts the write transactions run, and entered the write calls made, for
	// tests.
	groups, entered atomic.Int64
}

type groupCall struct {
	ctx context.Context
	fn  storage.TransactionCallback
	// wake receives false when the call is done (err is set) and true when the caller
	// becomes the leader that runs the next group.
	wake chan bool
	err  error
}

// errGroupAborted is returned to a caller whose callback succeeded but whose group was
// rolled back because another's failed; groupSnapshotter retries the call.
var errGroupAborted = errors.New("snapshot metadata transaction rolled back with its group; retry")

// maxGroupRetries bounds the retries of one snapshotter call after errGroupAborted.
const maxGroupRetries = 50

func newGroupStore(inner *storage.MetaStore) *groupStore { return &groupStore{inner: inner} }

// TransactionContext opens a transaction outside any group, for callers that manage it
// themselves; the overlay snapshotter only uses WithTransaction.
func (g *groupStore) TransactionContext(ctx context.Context, writable bool) (context.Context, storage.Transactor, error) {
	return g.inner.TransactionContext(ctx, writable)
}

// Close closes the database.
func (g *groupStore) Close() error { return g.inner.Close() }

// WithTransaction runs fn in a transaction: a read-only one of its own, or a write
// transaction shared with the concurrent callers' (see groupStore).
func (g *groupStore) WithTransaction(ctx context.Context, writable bool, fn storage.TransactionCallback) error {
	if !writable {
		return g.inner.WithTransaction(ctx, false, fn)
	}
	c := &groupCall{ctx: ctx, fn: fn, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	g.entered.Add(1)
	if !lead && !<-c.wake {
		return c.err
	}
	// This caller leads: it runs groups until its own call is done, then hands the lead to
	// the first caller still waiting, so that no caller serves the others for long.
	for {
		g.mu.Lock()
		group := g.pending
		g.pending = nil
		g.mu.Unlock()
		g.run(group)
		g.mu.Lock()
		if c.done() {
			if len(g.pending) > 0 {
				g.pending[0].wake <- true
			} else {
				g.leading = false
			}
			g.mu.Unlock()
			return c.err
		}
		g.mu.Unlock()
	}
}

// done reports whether the call has its result (the leader's own call, read by the leader).
func (c *groupCall) done() bool { return len(c.wake) > 0 }

// finish gives the call its result; the leader's own call keeps it in the channel, where
// done sees it and the leader never reads.
func (c *groupCall) finish(err error) {
	c.err = err
	c.wake <- false
}

// run runs the group's callbacks in one write transaction and gives each call its result.
func (g *groupStore) run(group []*groupCall) {
	g.groups.Add(1)
	tctx, t, err := g.inner.TransactionContext(context.Background(), true)
	if err != nil {
		for _, c := range group {
			c.finish(err)
		}
		return
	}
	tx := t.(*bolt.Tx)
	if len(group) > 1 {
		g.runSideBySide(tctx, tx, group)
		return
	}
	c := group[0]
	if err := c.call(txContext{Context: c.ctx, tx: tctx}); err != nil {
		g.rollback(tx, &err)
		c.finish(err)
		return
	}
	g.commit(tx, group)
}

// runSideBySide runs the group's callbacks each on a goroutine of its own, and lets each
// use the transaction only once the one before it has returned (see gatedContext): the
// overlay snapshotter makes a snapshot's directories before it touches the metadata, so
// the directories of the group's snapshots are made side by side, and only the metadata
// writes, the chown and the rename of each run one after the other, in the group's order.
// When a callback fails, the ones after it find no transaction and fail too; the
// transaction is rolled back, the callback that failed by itself gets its error and the
// others errGroupAborted, for groupSnapshotter to call them again.
func (g *groupStore) runSideBySide(tctx context.Context, tx *bolt.Tx, group []*groupCall) {
	var aborted atomic.Bool
	errs := make([]error, len(group))
	ctxs := make([]*gatedContext, len(group))
	gate := make(chan struct{})
	close(gate)
	var wg sync.WaitGroup
	run := func(i int, next chan struct{}) {
		defer close(next)
		if errs[i] = group[i].call(ctxs[i]); errs[i] != nil {
			aborted.Store(true)
		}
	}
	first := make(chan struct{})
	for i, c := range group {
		next := first
		if i > 0 {
			next = make(chan struct{})
		}
		ctxs[i] = &gatedContext{Context: c.ctx, tx: tctx, gate: gate, aborted: &aborted}
		if i > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(i, next)
			}()
		}
		gate = next
	}
	// The leader runs the first callback itself, while the others make their directories.
	run(0, first)
	wg.Wait()
	if !aborted.Load() {
		g.commit(tx, group)
		return
	}
	var rerr error
	g.rollback(tx, &rerr)
	for i, c := range group {
		switch {
		case errs[i] != nil && !ctxs[i].sawAbort && rerr == nil:
			c.finish(errs[i])
		case errs[i] != nil && !ctxs[i].sawAbort:
			c.finish(errors.Join(errs[i], rerr))
		case rerr != nil:
			c.finish(fmt.Errorf("%w: %w", errGroupAborted, rerr))
		default:
			c.finish(errGroupAborted)
		}
	}
}

// rollback rolls tx back after a failed callback, first moving the snapshot ID sequence
// past the IDs it handed out; what goes wrong on the way is joined to *err.
func (g *groupStore) rollback(tx *bolt.Tx, err *error) {
	seq := snapshotSequence(tx)
	if rerr := tx.Rollback(); rerr != nil {
		*err = errors.Join(*err, fmt.Errorf("rollback failed: %w", rerr))
	}
	if serr := g.keepSequence(seq); serr != nil {
		*err = errors.Join(*err, fmt.Errorf("the snapshot ID sequence could not be kept: %w", serr))
	}
}

// commit commits tx and gives the group's calls the result.
func (g *groupStore) commit(tx *bolt.Tx, group []*groupCall) {
	seq := snapshotSequence(tx)
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("commit failed: %w", err)
		if serr := g.keepSequence(seq); serr != nil {
			err = errors.Join(err, fmt.Errorf("keep the snapshot ID sequence: %w", serr))
		}
		for _, c := range group {
			c.finish(err)
		}
		return
	}
	for _, c := range group {
		c.finish(nil)
	}
}

// gatedContext is txContext for a callback that runs beside the others of its group: the
// first lookup of the transaction waits until the callback before it has returned, and
// once a callback of the group has failed, the transaction is not found (sawAbort).
type gatedContext struct {
	context.Context
	tx       context.Context
	gate     <-chan struct{}
	aborted  *atomic.Bool
	sawAbort bool
}

func (c *gatedContext) Value(key any) any {
	if v := c.tx.Value(key); v != nil {
		<-c.gate
		if c.aborted.Load() {
			c.sawAbort = true
			return nil
		}
		return v
	}
	return c.Context.Value(key)
}

// call runs the callback with the group's transaction; a panic, which would otherwise leave
// the transaction open and every later caller waiting, becomes the call's error.
func (c *groupCall) call(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("snapshot metadata transaction panicked: %v", p)
		}
	}()
	return c.fn(ctx)
}

// The overlay snapshotter's snapshot IDs are the sequence of the bucket v1/snapshots of
// containerd's metadata layout.
var (
	bucketStorageVersion = []byte("v1")
	bucketSnapshots      = []byte("snapshots")
)

func snapshotSequence(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketStorageVersion); v != nil {
		if s := v.Bucket(bucketSnapshots); s != nil {
			return s.Sequence()
		}
	}
	return 0
}

// keepSequence moves the snapshot ID sequence up to at least seq, in a transaction of its
// own, so that the IDs of a rolled-back group are never handed out again.
func (g *groupStore) keepSequence(seq uint64) error {
	if seq == 0 {
		return nil
	}
	_, t, err := g.inner.TransactionContext(context.Background(), true)
	if err != nil {
		return err
	}
	tx := t.(*bolt.Tx)
	if v := tx.Bucket(bucketStorageVersion); v != nil {
		if s := v.Bucket(bucketSnapshots); s != nil && s.Sequence() >= seq {
			return tx.Rollback()
		}
	}
	// The rolled-back group may have made the bucket (the first snapshot of a store): it
	// is made here as containerd's storage makes it, so that the sequence is kept.
	v, err := tx.CreateBucketIfNotExists(bucketStorageVersion)
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	s, err := v.CreateBucketIfNotExists(bucketSnapshots)
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := s.SetSequence(seq); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// txContext is a caller's context that carries the group's transaction: the containerd
// storage functions find it under their own (unexported) key, which only the transaction's
// context holds, and everything else comes from the caller's context.
type txContext struct {
	context.Context
	tx context.Context
}

func (c txContext) Value(key any) any {
	if v := c.tx.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// groupSnapshotter calls its snapshotter's writing methods again when their group was
// rolled back because of another caller's failure (errGroupAborted); what the aborted call
// made, the snapshotter has already cleaned up.
type groupSnapshotter struct {
	snapshots.Snapshotter
}

func retryGroup[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if !errors.Is(err, errGroupAborted) || i == maxGroupRetries {
			return v, err
		}
	}
}

func (s groupSnapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return retryGroup(func() ([]mount.Mount, error) { return s.Snapshotter.Prepare(ctx, key, parent, opts...) })
}

func (s groupSnapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return retryGroup(func() ([]mount.Mount, error) { return s.Snapshotter.View(ctx, key, parent, opts...) })
}

func (s groupSnapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	_, err := retryGroup(func() (struct{}, error) { return struct{}{}, s.Snapshotter.Commit(ctx, name, key, opts...) })
	return err
}

func (s groupSnapshotter) Remove(ctx context.Context, key string) error {
	_, err := retryGroup(func() (struct{}, error) { return struct{}{}, s.Snapshotter.Remove(ctx, key) })
	return err
}

func (s groupSnapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	return retryGroup(func() (snapshots.Info, error) { return s.Snapshotter.Update(ctx, info, fieldpaths...) })
}

// Cleanup forwards to the snapshotter's Cleanup (overlay implements snapshots.Cleaner).
func (s groupSnapshotter) Cleanup(ctx context.Context) error {
	c, ok := s.Snapshotter.(snapshots.Cleaner)
	if !ok {
		return nil
	}
	_, err := retryGroup(func() (struct{}, error) { return struct{}{}, c.Cleanup(ctx) })
	return err
}
