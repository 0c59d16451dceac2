package core

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/internal/fsutil"
)

// recordLog is the write-ahead log of the container records, names and events: what Commit,
// Delete, markDirty and Emit write is durable once it is in the log, and reaches the state
// database (bbolt) in batches, at checkpoints.
//
// Why: a bbolt commit costs two fsyncs (the pages, then the meta page) and rewrites every
// page on the path to each key it touches; on the machine we measure, 0.45 to 0.6 ms. An
// entry of the log costs one write into space allocated ahead and one fdatasync, about
// 0.2 ms, and concurrent writers share it (group commit). A create and a remove each write
// one entry.
//
// Format: the file is allocated ahead (logSize bytes of zeros, fsynced once) and written
// from its start; the write of a batch of entries is fdatasynced before it is
// acknowledged. Each entry is a frame:
//
//	length   uint32  of the payload
//	crc      uint32  CRC-32C of generation, sequence and payload
//	gen      uint64  generation
//	seq      uint64  1, 2, 3... within a generation
//	payload  a logOp (see encodeOp)
//
// Checkpoints: every checkpointN entries (or checkpointAt bytes) the writer starts a new
// generation right after the last frame, and the entries of the one it ends are applied to
// the database in one bbolt commit in the background, so that writers never wait for it (a
// checkpoint of 128 records took 14 ms on the development machine, during which every
// create used to wait). One checkpoint runs at a time. Once the file holds resetAt bytes,
// or after a checkpoint failed, the next one is made in place instead: everything written
// is applied, and the new generation starts at offset 0, over the old frames. Reading
// follows the generations from offset 0 (each one more than the one before, its sequence
// starting at 1) and stops at the first frame that is torn (CRC), out of sequence, or of
// another generation: the tail of older generations, already in the database, and a write
// that a crash cut short, never acknowledged, are both ignored (see recover for why no
// stale frame can pass for a current one).
//
// A failed write or fdatasync makes the log refuse further writes (after a failed fsync
// the kernel may have dropped the pages): the engine must be restarted, and replays what
// reached the disk.
type recordLog struct {
	db   *bolt.DB
	f    *os.File
	sync bool
	log  hclog.Logger

	qmu     sync.Mutex
	pending []*logCall
	leading bool

	// wmu serialises writes and checkpoints; the fields below are guarded by it.
	wmu      sync.Mutex
	gen, seq uint64
	// off is where the next frame goes, genBytes what generation gen has written.
	off, genBytes int64
	// unapplied are the entries of generation gen; failed those of the generation before,
	// when its background checkpoint failed.
	unapplied, failed []*logOp
	// ckpt is the background checkpoint in flight, nil when none is.
	ckpt   *logCheckpoint
	broken error
	// checkpointFault, set by tests, makes background checkpoints fail.
	checkpointFault error

	// data is the log as found at open, until recover has read it.
	data []byte
}

// logOp is one entry: a record put (Record set) or a container delete, with the name to
// put or delete and the event to log, or an event alone (ID empty).
type logOp struct {
	ID string `json:"id,omitempty"`
	// Record is the record to store, JSON; nil means delete the container ID. It follows
	// the JSON of the rest in the payload (see encodeOp), so that it is not scanned again.
	Record json.RawMessage `json:"-"`
	// Name is put for ID with a Record, and deleted (when it still names ID) without one.
	Name  string `json:"name,omitempty"`
	Event *Event `json:"event,omitempty"`
}

type logCall struct {
	ops []*logOp
	// wake receives false when the call is done (err is set) and true when the caller
	// becomes the one that writes the next batch.
	wake chan bool
	err  error
}

// logCheckpoint is a checkpoint running in the background; done is closed when it ended.
type logCheckpoint struct{ done chan struct{} }

const (
	logFile      = "records.log"
	logSize      = 4 << 20 // allocated ahead
	logHeader    = 24
	logMaxEntry  = 64 << 20
	checkpointAt = 768 << 10 // bytes written in a generation
	checkpointN  = 128       // entries written in a generation
	resetAt      = 3 << 20   // from this offset on, the next generation starts at offset 0
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// keyLogGen in bucketMeta is the first generation of the record log not yet applied to
	// the database, keyLogReserved the last one that may have been written (absent: the
	// same as keyLogGen, as written before background checkpoints).
	keyLogGen      = []byte("record-log-generation")
	keyLogReserved = []byte("record-log-reserved")
)

// openRecordLog opens the log in root, allocating it when it is new. Its entries reach the
// database through recover, which openStore calls in its opening transaction. syncWrites
// turns fdatasync on.
func openRecordLog(db *bolt.DB, root string, syncWrites bool, log hclog.Logger) (*recordLog, error) {
	path := filepath.Join(root, logFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	l := &recordLog{db: db, f: f, sync: syncWrites, log: log}
	fail := func(err error) (*recordLog, error) {
		f.Close()
		return nil, err
	}
	if l.data, err = io.ReadAll(f); err != nil {
		return fail(fmt.Errorf("read %s: %w", path, err))
	}
	if len(l.data) < logSize {
		if _, err := f.WriteAt(make([]byte, logSize-len(l.data)), int64(len(l.data))); err != nil {
			return fail(fmt.Errorf("allocate %s: %w", path, err))
		}
		if syncWrites {
			if err := f.Sync(); err != nil {
				return fail(fmt.Errorf("allocate %s: %w", path, err))
			}
			if os.IsNotExist(statErr) {
				if err := fsutil.SyncDir(root); err != nil {
					return fail(err)
				}
			}
		}
	}
	return l, nil
}

// recover applies the entries that the last process wrote and no checkpoint applied, and
// starts a new generation, in tx (openStore's opening transaction).
//
// A generation is reserved in the database (keyLogReserved) before anything of it is
// written: here and by each checkpoint, which reserve the generation after the one they
// start. The first generation written by a process is one more than every generation
// reserved or found in the file, so a process never writes a generation that an earlier
// one may have left frames of (a write cut short by a crash can leave some of its pages on
// disk and not others), and frames beyond the last current one are of older generations.
// Every generation from keyLogGen on that the file holds was written by the last process,
// in order: they are applied, oldest first.
func (l *recordLog) recover(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	var stored, reserved uint64
	if v := meta.Get(keyLogGen); len(v) == 8 {
		stored = binary.BigEndian.Uint64(v)
	}
	reserved = stored
	if v := meta.Get(keyLogReserved); len(v) == 8 {
		reserved = max(reserved, binary.BigEndian.Uint64(v))
	}
	segs := readLog(l.data)
	l.data = nil
	last := reserved
	for _, sg := range segs {
		last = max(last, sg.gen)
		if sg.gen < stored {
			continue
		}
		if err := applyOps(tx, sg.ops); err != nil {
			return fmt.Errorf("apply the record log: %w", err)
		}
	}
	l.gen = last + 1
	return putGenerations(meta, l.gen)
}

// putGenerations stores that the generations before gen are applied and that gen and the
// one after it may be written.
func putGenerations(meta *bolt.Bucket, gen uint64) error {
	// bbolt keeps the value slices until the commit: one array each.
	var applied, reserved [8]byte
	binary.BigEndian.PutUint64(applied[:], gen)
	binary.BigEndian.PutUint64(reserved[:], gen+1)
	if err := meta.Put(keyLogGen, applied[:]); err != nil {
		return err
	}
	return meta.Put(keyLogReserved, reserved[:])
}

// logSegment is what the log holds of one generation.
type logSegment struct {
	gen uint64
	ops []*logOp
}

// readLog returns the generations that follow each other from the start of the log: the
// first frame's, then each next one, which must begin right after the last frame of the
// one before with sequence 1. It stops at the first frame that is torn, out of sequence or
// of another generation.
func readLog(data []byte) []logSegment {
	var segs []logSegment
	var cur *logSegment
	for off := 0; ; {
		g, seq, payload, end, ok := nextFrame(data, off)
		if !ok {
			break
		}
		switch {
		case cur != nil && g == cur.gen && seq == uint64(len(cur.ops))+1:
		case (cur == nil || g == cur.gen+1) && seq == 1:
			segs = append(segs, logSegment{gen: g})
			cur = &segs[len(segs)-1]
		default:
			return segs
		}
		op, err := decodeOp(payload)
		if err != nil {
			break
		}
		cur.ops = append(cur.ops, op)
		off = end
	}
	return segs
}

// nextFrame reads the frame at off in data (see appendFrame): its generation, sequence
// and payload, and where the next frame begins. ok is false at the end of the data and for
// a frame that is torn (short, empty, too long, or failing its CRC).
func nextFrame(data []byte, off int) (gen, seq uint64, payload []byte, end int, ok bool) {
	if off+logHeader > len(data) {
		return 0, 0, nil, 0, false
	}
	n := int(binary.LittleEndian.Uint32(data[off:]))
	sum := binary.LittleEndian.Uint32(data[off+4:])
	end = off + logHeader + n
	if n == 0 || n > logMaxEntry || end > len(data) || crc32.Checksum(data[off+8:end], crcTable) != sum {
		return 0, 0, nil, 0, false
	}
	gen = binary.LittleEndian.Uint64(data[off+8:])
	seq = binary.LittleEndian.Uint64(data[off+16:])
	return gen, seq, data[off+logHeader : end], end, true
}

// encodeOp returns the payload of op: the length of the JSON of op without its record (a
// uvarint), that JSON, then the record as it is. Encoding the record inside the JSON would
// make encoding/json scan and compact it again, which costs more than the fdatasync's
// share of a small write.
func encodeOp(op *logOp) ([]byte, error) {
	meta, err := json.Marshal(op)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(meta)+len(op.Record))
	out = binary.AppendUvarint(out, uint64(len(meta)))
	return append(append(out, meta...), op.Record...), nil
}

func decodeOp(p []byte) (*logOp, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, errors.New("bad log entry")
	}
	op := new(logOp)
	if err := json.Unmarshal(p[k:k+int(n)], op); err != nil {
		return nil, err
	}
	if rest := p[k+int(n):]; len(rest) > 0 {
		op.Record = append(json.RawMessage(nil), rest...)
	}
	return op, nil
}

// appendFrame appends the frame of one entry to buf.
func appendFrame(buf []byte, gen, seq uint64, payload []byte) []byte {
	var h [logHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], gen)
	binary.LittleEndian.PutUint64(h[16:], seq)
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, payload))
	return append(append(buf, h[:]...), payload...)
}

// append makes ops durable, in order, sharing the write and the fdatasync with the
// concurrent callers'. A caller that finds no write in flight writes at once; the callers
// that arrive meanwhile are written together by the first of them, and so on, so that
// nobody writes for others for long.
func (l *recordLog) append(ops ...*logOp) error {
	c := &logCall{ops: ops, wake: make(chan bool, 1)}
	l.qmu.Lock()
	l.pending = append(l.pending, c)
	lead := !l.leading
	l.leading = true
	l.qmu.Unlock()
	if !lead && !<-c.wake {
		return c.err
	}
	// This caller leads, and its call is among the pending ones.
	l.qmu.Lock()
	batch := l.pending
	l.pending = nil
	l.qmu.Unlock()
	err := l.write(batch)
	for _, b := range batch {
		if b != c {
			b.err = err
			b.wake <- false
		}
	}
	l.qmu.Lock()
	if len(l.pending) > 0 {
		l.pending[0].wake <- true
	} else {
		l.leading = false
	}
	l.qmu.Unlock()
	return err
}

func (l *recordLog) write(batch []*logCall) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	var buf []byte
	seq := l.seq
	var ops []*logOp
	for _, c := range batch {
		for _, op := range c.ops {
			payload, err := encodeOp(op)
			if err != nil {
				return fmt.Errorf("encode log entry: %w", err)
			}
			seq++
			buf = appendFrame(buf, l.gen, seq, payload)
			ops = append(ops, op)
		}
	}
	if _, err := l.f.WriteAt(buf, l.off); err != nil {
		l.broken = fmt.Errorf("record log unusable after a failed write, restart the engine: %w", err)
		return l.broken
	}
	if l.sync {
		if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
			l.broken = fmt.Errorf("record log unusable after a failed fdatasync, restart the engine: %w", err)
			return l.broken
		}
	}
	l.seq, l.off = seq, l.off+int64(len(buf))
	l.genBytes += int64(len(buf))
	l.unapplied = append(l.unapplied, ops...)
	if (len(l.unapplied) >= checkpointN || l.genBytes >= checkpointAt) && l.ckpt == nil {
		l.startCheckpoint()
	}
	return nil
}

// startCheckpoint ends the generation being written: its entries are applied in the
// background while the next one is written after them. Past resetAt, or when the last
// background checkpoint failed, the checkpoint is made in place instead (see recordLog).
// The entries are durable in the log either way: a checkpoint that fails is retried.
func (l *recordLog) startCheckpoint() {
	if l.failed != nil || l.off >= resetAt {
		if err := l.checkpointLocked(); err != nil {
			l.log.Warn("the record log keeps its entries until a checkpoint succeeds", "error", err)
		}
		return
	}
	ops, gen := l.unapplied, l.gen
	// gen+1 was reserved when gen began.
	l.gen, l.seq, l.genBytes, l.unapplied = gen+1, 0, 0, nil
	ck := &logCheckpoint{done: make(chan struct{})}
	l.ckpt = ck
	fault := l.checkpointFault
	go func() {
		defer close(ck.done)
		err := l.db.Update(func(tx *bolt.Tx) error {
			if err := applyOps(tx, ops); err != nil {
				return err
			}
			if fault != nil {
				return fault
			}
			return putGenerations(tx.Bucket(bucketMeta), gen+1)
		})
		l.wmu.Lock()
		defer l.wmu.Unlock()
		l.ckpt = nil
		if err != nil {
			l.failed = ops
			l.log.Warn("the record log keeps its entries until a checkpoint succeeds", "error", fmt.Errorf("checkpoint of the record log: %w", err))
		}
	}()
}

// waitCheckpoint waits, with wmu held, for the background checkpoint in flight; it lets
// wmu go meanwhile.
func (l *recordLog) waitCheckpoint() {
	for l.ckpt != nil {
		ck := l.ckpt
		l.wmu.Unlock()
		<-ck.done
		l.wmu.Lock()
	}
}

// checkpoint applies the log's entries to the database and starts a new generation.
func (l *recordLog) checkpoint() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.checkpointLocked()
}

// checkpointLocked applies every entry written (after the background checkpoint in flight,
// if any) and starts the next generation at offset 0.
func (l *recordLog) checkpointLocked() error {
	l.waitCheckpoint()
	if len(l.unapplied) == 0 && l.failed == nil {
		return nil
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		if err := applyOps(tx, l.failed); err != nil {
			return err
		}
		if err := applyOps(tx, l.unapplied); err != nil {
			return err
		}
		return putGenerations(tx.Bucket(bucketMeta), l.gen+1)
	})
	if err != nil {
		return fmt.Errorf("checkpoint of the record log: %w", err)
	}
	l.gen++
	l.seq, l.off, l.genBytes, l.unapplied, l.failed = 0, 0, 0, nil, nil
	return nil
}

// close checkpoints and closes the file.
func (l *recordLog) close() error {
	err := l.checkpoint()
	return errors.Join(err, l.f.Close())
}

// applyOps writes ops to the database, in order.
func applyOps(tx *bolt.Tx, ops []*logOp) error {
	cb, nb, eb := tx.Bucket(bucketContainers), tx.Bucket(bucketNames), tx.Bucket(bucketEvents)
	for _, op := range ops {
		if op.ID != "" {
			if op.Record != nil {
				if err := cb.Put([]byte(op.ID), op.Record); err != nil {
					return err
				}
				if op.Name != "" {
					if err := nb.Put([]byte(op.Name), []byte(op.ID)); err != nil {
						return err
					}
				}
			} else {
				if err := cb.Delete([]byte(op.ID)); err != nil {
					return err
				}
				if op.Name != "" && string(nb.Get([]byte(op.Name))) == op.ID {
					if err := nb.Delete([]byte(op.Name)); err != nil {
						return err
					}
				}
			}
		}
		if op.Event != nil {
			if err := putEvent(eb, op.Event); err != nil {
				return err
			}
		}
	}
	return nil
}

// putEvent stores ev under its sequence number and drops the events older than the last
// maxEvents.
func putEvent(b *bolt.Bucket, ev *Event) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], ev.Seq)
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := b.Put(k[:], data); err != nil {
		return err
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k)+maxEvents <= ev.Seq; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
