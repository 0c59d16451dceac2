package core

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/internal/fsutil"
)

// journal is the record of the runs in flight (runRecord), which recovery finishes after a
// crash: an append-only file, <root>/journal.log, of frames as the record log's (length,
// CRC-32C, generation, sequence, payload), each the JSON of a journalOp. It is written
// without fsync unless Options.SyncJournal is set: it has to survive the death of the
// process, which the page cache ensures. A run's entry costs one write of a few hundred
// bytes when it begins and one when it ends (a bbolt transaction cost 30–40 µs each here,
// even without fsync, and wrote pages the kernel then had to write back).
//
// At open, and whenever the file has grown past journalCompactAt (and twice what the last
// compaction wrote), the runs still in flight are written to a new file, under a new random
// generation, which replaces the old one (rename). Reading takes the frames of the first
// frame's generation, in sequence, and stops at the first that is torn, out of sequence or
// of another generation: a write that a crash cut short is ignored.
type journal struct {
	path string
	sync bool
	log  hclog.Logger

	mu       sync.Mutex
	f        *os.File
	gen, seq uint64
	// off is where the next frame goes; base is where the last compaction ended.
	off, base int64
	live      map[string]json.RawMessage // run ID -> runRecord
	broken    error
}

// journalOp is one entry of the journal: a run's record put, or the end of a run.
type journalOp struct {
	Put json.RawMessage `json:"put,omitempty"`
	End string          `json:"end,omitempty"`
}

const (
	journalFile      = "journal.log"
	journalCompactAt = 1 << 20
	// journalDB is the journal of earlier versions, a bbolt database (bucket runs: ID ->
	// runRecord): its runs are taken over at open, and the file removed.
	journalDB = "journal.db"
)

// openJournal opens the journal of root: it reads journal.log (and takes over the runs of
// an earlier version's journal.db). A journal that ends cleanly with its last frame, and is
// small, is written on after it; otherwise (a write torn by a crash, a journal.db taken
// over, no file yet) the runs in flight are written to a new journal.log. So opening a
// state root, as every CLI command does, writes nothing in the common case. A journal.db
// that cannot be read (torn by a power loss while unsynced) is moved aside, loudly: its
// runs can no longer be finished, but the records in the state database are intact.
func openJournal(root string, syncWrites bool, log hclog.Logger) (*journal, error) {
	j := &journal{path: filepath.Join(root, journalFile), sync: syncWrites, log: log, live: map[string]json.RawMessage{}}
	data, err := os.ReadFile(j.path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.Internal(fmt.Errorf("read the journal: %w", err))
	}
	gen, seq, end := readJournal(data, j.live)
	dbPath := filepath.Join(root, journalDB)
	old, err := readJournalDB(dbPath, log)
	if err != nil {
		return nil, err
	}
	// Writing on is safe only with nothing after the last frame: bytes left by a torn
	// write could otherwise pass for frames to come. An empty file gets a new generation.
	if exists && old == nil && end == len(data) && end < journalCompactAt && (seq > 0 || end == 0) {
		f, err := os.OpenFile(j.path, os.O_RDWR, 0o600)
		if err != nil {
			return nil, errdefs.Internal(fmt.Errorf("open the journal: %w", err))
		}
		if end == 0 {
			if gen, err = newGeneration(); err != nil {
				f.Close()
				return nil, errdefs.Internal(fmt.Errorf("open the journal: %w", err))
			}
		}
		j.f, j.gen, j.seq, j.off = f, gen, seq, int64(end)
		return j, nil
	}
	for id, r := range old {
		if _, ok := j.live[id]; !ok {
			j.live[id] = r
		}
	}
	if err := j.compact(); err != nil {
		return nil, errdefs.Internal(fmt.Errorf("write the journal: %w", err))
	}
	if old != nil {
		if err := os.Remove(dbPath); err != nil {
			return nil, errdefs.Internal(fmt.Errorf("remove the journal of an earlier version: %w", err))
		}
	}
	return j, nil
}

// readJournal adds to live the runs that data, a journal file, leaves in flight, and
// returns the generation and sequence of its last frame and where that frame ends.
func readJournal(data []byte, live map[string]json.RawMessage) (gen, seq uint64, off int) {
	for {
		g, s, payload, end, ok := nextFrame(data, off)
		if !ok {
			return gen, seq, off
		}
		if seq == 0 {
			gen = g
		}
		if g != gen || s != seq+1 {
			return
		}
		var op journalOp
		if err := json.Unmarshal(payload, &op); err != nil {
			return
		}
		switch {
		case op.Put != nil:
			var r runRecord
			if json.Unmarshal(op.Put, &r) != nil || r.ID == "" {
				return
			}
			live[r.ID] = op.Put
		case op.End != "":
			delete(live, op.End)
		}
		seq, off = s, end
	}
}

// readJournalDB returns the runs of an earlier version's journal, nil when there is none.
func readJournalDB(path string, log hclog.Logger) (map[string]json.RawMessage, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	runs := map[string]json.RawMessage{}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err == nil {
		err = db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketRuns)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				runs[string(k)] = append(json.RawMessage(nil), v...)
				return nil
			})
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		return runs, nil
	}
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, errdefs.Unavailable(fmt.Errorf("journal %s is in use by another slipway process", path))
	}
	aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
	log.Error("journal unreadable; moved aside, half-done runs in it cannot be finished", "path", path, "aside", aside, "error", err)
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, errdefs.Internal(fmt.Errorf("open journal: %w (and moving it aside failed: %v)", err, rerr))
	}
	return nil, nil
}

// newGeneration returns a random generation: a new file, or a file that starts over,
// cannot meet frames of its own generation left by an earlier one.
func newGeneration() (uint64, error) {
	var g [8]byte
	if _, err := rand.Read(g[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(g[:]), nil
}

// compact writes the runs in flight to a new file under a new generation and puts it in
// place of the journal. With j.mu held, or before j is in use.
func (j *journal) compact() error {
	gen, err := newGeneration()
	if err != nil {
		return err
	}
	var buf []byte
	var seq uint64
	for _, r := range j.live {
		payload, err := json.Marshal(journalOp{Put: r})
		if err != nil {
			return err
		}
		seq++
		buf = appendFrame(buf, gen, seq, payload)
	}
	tmp := j.path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		return errors.Join(err, f.Close(), os.Remove(tmp))
	}
	if j.sync {
		if err := f.Sync(); err != nil {
			return errors.Join(err, f.Close(), os.Remove(tmp))
		}
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return errors.Join(err, f.Close(), os.Remove(tmp))
	}
	if j.sync {
		if err := fsutil.SyncDir(filepath.Dir(j.path)); err != nil {
			return errors.Join(err, f.Close())
		}
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.gen, j.seq, j.off, j.base = f, gen, seq, int64(len(buf)), int64(len(buf))
	return nil
}

// put writes r as a run in flight; durable makes it survive a power loss whatever the
// journal's sync setting.
func (j *journal) put(r *runRecord, durable bool) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return j.write(journalOp{Put: data}, r.ID, data, durable)
}

// end writes that run id is over.
func (j *journal) end(id string) error { return j.write(journalOp{End: id}, id, nil, false) }

func (j *journal) write(op journalOp, id string, put json.RawMessage, durable bool) error {
	payload, err := json.Marshal(op)
	if err != nil {
		return err
	}
	j.mu.Lock()
	if j.broken != nil {
		j.mu.Unlock()
		return j.broken
	}
	frame := appendFrame(nil, j.gen, j.seq+1, payload)
	if _, err := j.f.WriteAt(frame, j.off); err != nil {
		j.broken = fmt.Errorf("journal unusable after a failed write, restart the engine: %w", err)
		j.mu.Unlock()
		return j.broken
	}
	j.seq++
	j.off += int64(len(frame))
	if put != nil {
		j.live[id] = put
	} else {
		delete(j.live, id)
	}
	// Past journalCompactAt, and past twice what the runs in flight took at the last
	// compaction (many runs whose undo failed are kept for ever).
	if j.off >= journalCompactAt && j.off >= 2*j.base {
		if err := j.compact(); err != nil {
			// The file goes on growing; the next write tries again.
			j.log.Warn("cannot compact the journal", "error", err)
		}
	}
	if j.sync || durable {
		if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
			j.broken = fmt.Errorf("journal unusable after a failed fdatasync, restart the engine: %w", err)
			j.mu.Unlock()
			return j.broken
		}
	}
	j.mu.Unlock()
	return nil
}

// runs returns the runs in flight.
func (j *journal) runs() ([]*runRecord, error) {
	j.mu.Lock()
	raw := make([]json.RawMessage, 0, len(j.live))
	for _, r := range j.live {
		raw = append(raw, r)
	}
	j.mu.Unlock()
	out := make([]*runRecord, 0, len(raw))
	for _, b := range raw {
		var r runRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("journal entry: %w", err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// close closes the file.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	if j.broken == nil {
		j.broken = errors.New("journal closed")
	}
	return err
}
