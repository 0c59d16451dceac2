package local

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/slipwayhq/slipway/internal/fsutil"
)

// spares is a pool of ready-made, empty container roots (a root and its checkpoints
// directory, with their modes and owners set) kept in a directory beside the containers
// directory, on the same filesystem. MakeDirs renames a spare into place instead of making
// two directories, and Undo of a container whose root holds nothing but its empty
// checkpoints directory renames the root back into the pool instead of deleting it.
//
// Why: making a directory is the most expensive thing a create does on ext4 once many
// inodes were freed recently (the inode allocator walks the recently freed ones), and a
// rename allocates no inode. The pool is refilled in the background when it runs low, so
// the create path pays one rename. A spare holds no container state: the next process
// adopts the spares it finds (setting their modes and owners again when it takes one, as a
// crash may have cut one short) and deletes what was left in the trash, in the background.
// Each process names what it adds with a prefix of its own, so names never collide.
type spares struct {
	dir            string // holds this pool's spares only
	prefix         string // this process's part of the names
	uid, gid, egid int
	want           int // refill up to this many
	keep           int // recycle removed roots up to this many
	log            hclog.Logger

	mu       sync.Mutex
	ready    []spare
	seq      int
	filling  bool
	fills    sync.WaitGroup
	trash    []string // roots to delete in the background
	draining bool
}

// spare is a ready-made root in the pool; adopted is set for one an earlier process made.
type spare struct {
	name    string
	adopted bool
}

// newSpares returns the pool below parent for roots owned by uid:gid, adopting the spares an
// earlier process left there and deleting its trash in the background.
func newSpares(parent string, uid, gid, want int, log hclog.Logger) (*spares, error) {
	dir := filepath.Join(parent, strconv.Itoa(uid)+"."+strconv.Itoa(gid))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make spare container roots %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spare container roots %s: %w", dir, err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("spare container roots: %w", err)
	}
	p := &spares{dir: dir, prefix: "-" + hex.EncodeToString(b[:]) + "-", uid: uid, gid: gid, egid: os.Getegid(), want: want, keep: 4 * want, log: log}
	var trash []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "t") || !e.IsDir() || len(p.ready) >= p.keep {
			trash = append(trash, filepath.Join(dir, e.Name()))
			continue
		}
		p.ready = append(p.ready, spare{name: e.Name(), adopted: true})
	}
	p.mu.Lock()
	p.toTrashLocked(trash...)
	p.mu.Unlock()
	return p, nil
}

// name returns a fresh name for a spare ("s"), a recycled root ("r") or trash ("t").
func (p *spares) nameLocked(kind string) string {
	p.seq++
	return kind + p.prefix + strconv.Itoa(p.seq)
}

// take moves a spare to root and reports whether it did; on false the caller makes the
// directories itself.
func (p *spares) take(root string) bool {
	p.mu.Lock()
	n := len(p.ready)
	if n == 0 {
		p.refillLocked()
		p.mu.Unlock()
		return false
	}
	sp := p.ready[n-1]
	p.ready = p.ready[:n-1]
	if n-1 < p.want/2 {
		p.refillLocked()
	}
	p.mu.Unlock()
	src := filepath.Join(p.dir, sp.name)
	if err := fsutil.RenameNoReplace(src, root); err != nil {
		// root exists and is not empty (a retried run), or the spare was damaged: make the
		// directories the slow way and drop the spare.
		if rerr := os.RemoveAll(src); rerr != nil {
			p.log.Warn("cannot remove a spare container root", "dir", src, "error", rerr)
		}
		return false
	}
	if sp.adopted {
		// Made by an earlier process, which may have died half-way: set it right.
		if err := p.make(root); err != nil {
			p.log.Warn("cannot set up an adopted spare container root", "dir", root, "error", err)
			return false
		}
	}
	return true
}

// put moves root, the root of a container being removed, into the pool if it holds nothing
// but an empty checkpoints directory and has the pool's owner, and reports whether it did.
func (p *spares) put(root string) bool {
	p.mu.Lock()
	full := len(p.ready) >= p.keep
	p.mu.Unlock()
	if full || !pristine(root, p.uid, p.gid) {
		return false
	}
	p.mu.Lock()
	name := p.nameLocked("r")
	p.mu.Unlock()
	if err := os.Rename(root, filepath.Join(p.dir, name)); err != nil {
		return false
	}
	p.mu.Lock()
	p.ready = append(p.ready, spare{name: name})
	p.mu.Unlock()
	return true
}

// discard moves root, the root of a container being removed that put did not take, into the
// pool directory and deletes it in the background, so that a removal costs one rename; a
// crash before the deletion leaves it to the next process, which empties the pool
// directory. It returns false when root could not be moved: the caller deletes it.
func (p *spares) discard(root string) bool {
	p.mu.Lock()
	dst := filepath.Join(p.dir, p.nameLocked("t"))
	p.mu.Unlock()
	if err := os.Rename(root, dst); err != nil {
		return false
	}
	p.mu.Lock()
	p.toTrashLocked(dst)
	p.mu.Unlock()
	return true
}

// toTrashLocked queues dirs for deletion in the background; p.mu is held.
func (p *spares) toTrashLocked(dirs ...string) {
	if len(dirs) == 0 {
		return
	}
	p.trash = append(p.trash, dirs...)
	if !p.draining {
		p.draining = true
		p.fills.Add(1)
		go p.drain()
	}
}

func (p *spares) drain() {
	defer p.fills.Done()
	for {
		p.mu.Lock()
		if len(p.trash) == 0 {
			p.draining = false
			p.mu.Unlock()
			return
		}
		dir := p.trash[0]
		p.trash = p.trash[1:]
		p.mu.Unlock()
		if err := os.RemoveAll(dir); err != nil {
			p.log.Warn("cannot delete a removed container root; the next start retries", "dir", dir, "error", err)
		}
	}
}

// pristine reports whether root is a directory owned by uid:gid with mode 0710 that holds
// exactly one empty directory, checkpoints, with mode 0700.
func pristine(root string, uid, gid int) bool {
	fi, err := os.Lstat(root)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o710 {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid || int(st.Gid) != gid {
		return false
	}
	names, err := readNames(root)
	if err != nil || len(names) != 1 || names[0] != "checkpoints" {
		return false
	}
	cp := filepath.Join(root, "checkpoints")
	if fi, err := os.Lstat(cp); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return false
	}
	names, err = readNames(cp)
	return err == nil && len(names) == 0
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// refillLocked starts a background refill unless one runs; p.mu is held.
func (p *spares) refillLocked() {
	if p.filling || p.want == 0 {
		return
	}
	p.filling = true
	p.fills.Add(1)
	go p.fill()
}

func (p *spares) fill() {
	defer p.fills.Done()
	for {
		p.mu.Lock()
		if len(p.ready) >= p.want {
			p.filling = false
			p.mu.Unlock()
			return
		}
		name := p.nameLocked("s")
		p.mu.Unlock()
		if err := p.make(filepath.Join(p.dir, name)); err != nil {
			p.log.Warn("cannot make a spare container root", "error", err)
			p.mu.Lock()
			p.filling = false
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.ready = append(p.ready, spare{name: name})
		p.mu.Unlock()
	}
}

func (p *spares) make(root string) error {
	if err := mkdirAndChown(root, 0o710, p.uid, p.gid); err != nil {
		return err
	}
	if err := mkdirAndChown(filepath.Join(root, "checkpoints"), 0o700, p.uid, p.egid); err != nil {
		return errors.Join(err, os.RemoveAll(root))
	}
	return nil
}

// wait waits for a refill and a deletion in flight.
func (p *spares) wait() { p.fills.Wait() }
