package snapshot

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// trash deletes the directories of removed snapshots in the background. Undo renames a
// removed container's snapshot directory into <driver root>/trash, which costs one rename,
// and returns; a goroutine deletes what is in the trash. The metadata is already gone
// when a directory is moved there, so the snapshot no longer exists for anyone; a process
// that dies before the trash is empty leaves it to the next one, which empties it in the
// background when it opens the driver. Close of the driver waits for the trash to be empty.
type trash struct {
	dir    string
	prefix string // this process's part of the names, so they never meet a leftover's
	log    hclog.Logger

	mu       sync.Mutex
	seq      int
	pending  []string
	draining bool
	done     sync.WaitGroup
}

// newTrash returns the trash below driverRoot, deleting in the background what an earlier
// process left in it.
func newTrash(driverRoot string, log hclog.Logger) (*trash, error) {
	dir := filepath.Join(driverRoot, "trash")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	t := &trash{dir: dir, prefix: strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-", log: log}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range ents {
		t.pending = append(t.pending, filepath.Join(dir, e.Name()))
	}
	if len(t.pending) > 0 {
		t.draining = true
		t.done.Add(1)
		go t.drain()
	}
	return t, nil
}

// put moves dir into the trash for deletion in the background; when the move fails it
// deletes dir at once.
func (t *trash) put(dir string) error {
	t.mu.Lock()
	t.seq++
	dst := filepath.Join(t.dir, t.prefix+strconv.Itoa(t.seq))
	t.mu.Unlock()
	if err := os.Rename(dir, dst); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return os.RemoveAll(dir)
	}
	t.mu.Lock()
	t.pending = append(t.pending, dst)
	if !t.draining {
		t.draining = true
		t.done.Add(1)
		go t.drain()
	}
	t.mu.Unlock()
	return nil
}

func (t *trash) drain() {
	defer t.done.Done()
	for {
		t.mu.Lock()
		if len(t.pending) == 0 {
			t.draining = false
			t.mu.Unlock()
			return
		}
		dir := t.pending[0]
		t.pending = t.pending[1:]
		t.mu.Unlock()
		if err := os.RemoveAll(dir); err != nil {
			t.log.Warn("cannot delete a removed snapshot's directory; the next start retries", "dir", dir, "error", err)
		}
	}
}

// wait waits until the trash is empty.
func (t *trash) wait() { t.done.Wait() }
