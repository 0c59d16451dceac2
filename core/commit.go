package core

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs write transactions on a bbolt database, committing the writes of
// concurrent callers together. A caller that finds no commit in flight commits at once, so a
// lone caller pays no delay (unlike bolt's Batch, which waits for company); callers that
// arrive while a commit is in flight are queued and committed together in the next
// transaction, so N parallel creates cost far fewer than N fsyncs.
type groupCommit struct {
	db *bolt.DB

	mu      sync.Mutex
	pending []*commitCall
	running bool
}

type commitCall struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction, possibly shared with other callers' functions. fn
// must only write; if it fails, it is retried alone so that its error is its own.
func (g *groupCommit) update(fn func(*bolt.Tx) error) error {
	c := &commitCall{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.running {
		g.mu.Unlock()
		return <-c.done
	}
	g.running = true
	for len(g.pending) > 0 {
		batch := g.pending
		g.pending = nil
		g.mu.Unlock()
		g.commit(batch)
		g.mu.Lock()
	}
	g.running = false
	g.mu.Unlock()
	return <-c.done
}

func (g *groupCommit) commit(batch []*commitCall) {
	if len(batch) == 1 {
		batch[0].done <- g.db.Update(batch[0].fn)
		return
	}
	err := g.db.Update(func(tx *bolt.Tx) error {
		for _, c := range batch {
			if err := c.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, c := range batch {
			c.done <- nil
		}
		return
	}
	// One function failed and rolled back the whole batch: run each alone.
	for _, c := range batch {
		c.done <- g.db.Update(c.fn)
	}
}
