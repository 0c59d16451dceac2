package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/spec"
)

// testStore opens the store of a state root as the engine does.
func testStore(t *testing.T, root string) *store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(root, "slipway.db"), 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := openJournal(root, false, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	s, err := openStore(db, j, root, true, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crash drops the store as a killed process would: the log is not checkpointed.
func crash(t *testing.T, s *store) {
	t.Helper()
	s.rl.f.Close()
	s.db.Close()
	s.j.close()
}

func closeStore(t *testing.T, s *store) {
	t.Helper()
	if err := s.rl.close(); err != nil {
		t.Fatal(err)
	}
	s.db.Close()
	s.j.close()
}

func commitN(t *testing.T, s *store, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		rec := &spec.Record{ID: NewID(), Name: fmt.Sprintf("%s%d", prefix, i)}
		if err := s.ReserveName(rec.ID, rec.Name); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	return ids
}

// inDB reports whether the database itself (not the log) holds the record.
func inDB(t *testing.T, s *store, id string) bool {
	t.Helper()
	var ok bool
	s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketContainers).Get([]byte(id)) != nil
		return nil
	})
	return ok
}

func TestRecordLogReplaysAfterACrash(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	ids := commitN(t, s, "a", 5)
	if err := s.Delete(context.Background(), ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.markDirty(ids[2], fmt.Errorf("undo failed")); err != nil {
		t.Fatal(err)
	}
	if inDB(t, s, ids[0]) {
		t.Fatal("a record reached the database before a checkpoint: the log is not in use")
	}
	crash(t, s)

	s = testStore(t, root)
	defer closeStore(t, s)
	for i, id := range ids {
		r := s.records[id]
		switch {
		case i == 1 && r != nil:
			t.Errorf("deleted container %s is back after the crash", id)
		case i != 1 && r == nil:
			t.Errorf("container %d (%s) lost in the crash", i, id)
		case i == 2 && r.State != "dead":
			t.Errorf("container %s state %q after the crash, want dead", id, r.State)
		}
	}
	if s.names["a1"] != "" || s.names["a0"] != ids[0] {
		t.Errorf("names after the crash: %v", s.names)
	}
	if !inDB(t, s, ids[0]) {
		t.Error("the replayed records are not in the database")
	}
	evs, err := s.events(time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 6 { // 5 creates, 1 destroy
		t.Fatalf("%d events after the crash, want 6: %+v", len(evs), evs)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, ev.Seq)
		}
	}
	// New events continue the sequence.
	commitN(t, s, "b", 1)
	evs, _ = s.events(time.Time{}, time.Time{})
	if last := evs[len(evs)-1]; last.Seq != 7 || last.Action != "create" {
		t.Errorf("event after reopen: %+v, want seq 7", last)
	}
}

func TestRecordLogIgnoresATornTail(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	ids := commitN(t, s, "a", 3)
	off := s.rl.off
	crash(t, s)
	// Tear the last entry: zero its last bytes, as a write cut short would leave it.
	f, err := os.OpenFile(filepath.Join(root, logFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 16), off-16); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s = testStore(t, root)
	defer closeStore(t, s)
	if s.records[ids[0]] == nil || s.records[ids[1]] == nil {
		t.Error("entries before the torn one were lost")
	}
	if s.records[ids[2]] != nil {
		t.Error("the torn entry was applied")
	}
}

// waitCheckpoint waits for the log's background checkpoint, if one is running.
func waitCheckpoint(s *store) {
	s.rl.wmu.Lock()
	s.rl.waitCheckpoint()
	s.rl.wmu.Unlock()
}

// TestRecordLogAfterCheckpoint checks the generations: entries of a checkpointed
// generation left further in the file are not applied over newer ones, and a torn first
// frame of a new generation loses nothing that was checkpointed.
func TestRecordLogAfterCheckpoint(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	gen := s.rl.gen
	ids := commitN(t, s, "a", checkpointN) // the last commit starts a checkpoint
	waitCheckpoint(s)
	if s.rl.gen != gen+1 || s.rl.off == 0 || !inDB(t, s, ids[0]) || !inDB(t, s, ids[checkpointN-1]) {
		t.Fatalf("no background checkpoint after %d entries (generation %d, was %d; offset %d)", checkpointN, s.rl.gen, gen, s.rl.off)
	}
	// The next generation follows in the file and deletes a container.
	if err := s.Delete(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	crash(t, s)
	s = testStore(t, root)
	if s.records[ids[0]] != nil {
		t.Error("a deleted container came back from an older generation's entries")
	}
	if len(s.records) != checkpointN-1 {
		t.Errorf("%d records, want %d", len(s.records), checkpointN-1)
	}
	crash(t, s)

	// Reopened without new writes: the generations in the file are applied already.
	s = testStore(t, root)
	if s.records[ids[0]] != nil || len(s.records) != checkpointN-1 {
		t.Errorf("reopen replayed an applied generation: %d records", len(s.records))
	}
	commitN(t, s, "b", 1) // at offset 0, over the old generations' first frame
	crash(t, s)
	// Tear the new generation's first frame.
	f, err := os.OpenFile(filepath.Join(root, logFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, logHeader)
	f.Close()
	s = testStore(t, root)
	defer closeStore(t, s)
	if len(s.records) != checkpointN-1 {
		t.Errorf("%d records after a torn first frame, want the %d checkpointed", len(s.records), checkpointN-1)
	}
}

// TestRecordLogCrashDuringCheckpoint crashes right after a checkpoint started in the
// background, with entries of the next generation written: whether the checkpoint made it
// or not, every entry is there after the crash.
func TestRecordLogCrashDuringCheckpoint(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoint fails %v", fail), func(t *testing.T) {
			root := t.TempDir()
			s := testStore(t, root)
			if fail {
				s.rl.checkpointFault = errors.New("injected")
			}
			ids := commitN(t, s, "a", checkpointN+3)
			crash(t, s)
			s = testStore(t, root)
			defer closeStore(t, s)
			if len(s.records) != checkpointN+3 {
				t.Errorf("%d records after the crash, want %d", len(s.records), checkpointN+3)
			}
			for _, id := range ids {
				if !inDB(t, s, id) {
					t.Fatalf("container %s not in the database after recovery", id)
				}
			}
		})
	}
}

// TestRecordLogFailedCheckpoint checks that a background checkpoint that fails is made
// again in place, before the log starts over at offset 0 where its entries are.
func TestRecordLogFailedCheckpoint(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	s.rl.checkpointFault = errors.New("injected")
	ids := commitN(t, s, "a", checkpointN)
	waitCheckpoint(s)
	if inDB(t, s, ids[0]) || s.rl.failed == nil {
		t.Fatal("the injected checkpoint failure did not happen")
	}
	s.rl.checkpointFault = nil
	more := commitN(t, s, "b", checkpointN) // the next checkpoint is made in place
	waitCheckpoint(s)
	if s.rl.off != 0 || s.rl.failed != nil || !inDB(t, s, ids[0]) || !inDB(t, s, more[checkpointN-1]) {
		t.Fatalf("after the failed checkpoint: offset %d, failed %d, first in db %v", s.rl.off, len(s.rl.failed), inDB(t, s, ids[0]))
	}
	crash(t, s)
	s = testStore(t, root)
	defer closeStore(t, s)
	if len(s.records) != 2*checkpointN {
		t.Errorf("%d records, want %d", len(s.records), 2*checkpointN)
	}
}

// TestRecordLogStartsOver checks that the log goes back to offset 0 once it holds resetAt
// bytes, and that what it wrote before and after survives a crash.
func TestRecordLogStartsOver(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	big := strings.Repeat("x", 64<<10)
	var ids []string
	for i, reset := 0, false; !reset; i++ {
		before := s.rl.off
		rec := &spec.Record{ID: NewID(), Name: fmt.Sprintf("c%d", i), Dirty: big}
		if err := s.ReserveName(rec.ID, rec.Name); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
		// The write that crossed resetAt ended a generation, made in place.
		if reset = s.rl.off < before; reset && before+2*int64(len(big)) < resetAt {
			t.Fatalf("the log started over at offset %d, before %d", before, resetAt)
		}
		if i > 1000 {
			t.Fatal("the log never started over")
		}
	}
	after := commitN(t, s, "z", 2)
	crash(t, s)
	s = testStore(t, root)
	defer closeStore(t, s)
	for _, id := range append(ids, after...) {
		if s.records[id] == nil {
			t.Fatalf("container %s lost", id)
		}
	}
}

func TestRecordLogParallelCommitsShareWrites(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			rec := &spec.Record{ID: NewID(), Name: fmt.Sprintf("p%d", i)}
			if err := s.ReserveName(rec.ID, rec.Name); err != nil {
				errs <- err
				return
			}
			errs <- s.Commit(context.Background(), rec)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	crash(t, s)
	s = testStore(t, root)
	defer closeStore(t, s)
	if len(s.records) != n {
		t.Errorf("%d records after a crash, want %d", len(s.records), n)
	}
}

func frame(t *testing.T, gen, seq uint64, op *logOp) []byte {
	t.Helper()
	b, err := encodeOp(op)
	if err != nil {
		t.Fatal(err)
	}
	return appendFrame(nil, gen, seq, b)
}

// TestReadLogStopsAtAnotherGeneration lays frames out as a crash can leave them, with
// the stale frame exactly where the next one of the current generation would be.
func TestReadLogStopsAtAnotherGeneration(t *testing.T) {
	put := func(id string) *logOp { return &logOp{ID: id, Record: json.RawMessage(`{"Id":"` + id + `"}`)} }
	count := func(segs []logSegment) (n int) {
		for _, sg := range segs {
			n += len(sg.ops)
		}
		return n
	}
	// Generation 5 wrote A, B; generation 6 then wrote A' (same length) over A.
	data := append(frame(t, 6, 1, put("a")), frame(t, 5, 2, put("b"))...)
	segs := readLog(data)
	if len(segs) != 1 || segs[0].gen != 6 || len(segs[0].ops) != 1 || segs[0].ops[0].ID != "a" {
		t.Errorf("readLog = %+v; want generation 6 with its one entry", segs)
	}
	// Out of sequence within a generation.
	data = append(frame(t, 6, 1, put("a")), frame(t, 6, 3, put("b"))...)
	if segs := readLog(data); count(segs) != 1 {
		t.Errorf("readLog read %d entries past a gap in the sequence", count(segs))
	}
	// A torn first frame: nothing is read, even though a later frame is intact.
	data = append(frame(t, 5, 1, put("a")), frame(t, 5, 2, put("b"))...)
	data[logHeader] ^= 0xff
	if segs := readLog(data); count(segs) != 0 {
		t.Errorf("readLog read %d entries after a torn first frame", count(segs))
	}
	// Generations that follow each other (a background checkpoint) are read in order; one
	// that skips a generation, or does not start at sequence 1, ends the log.
	data = append(append(frame(t, 5, 1, put("a")), frame(t, 5, 2, put("b"))...), frame(t, 6, 1, put("c"))...)
	data = append(append(data, frame(t, 6, 2, put("d"))...), frame(t, 7, 2, put("stale"))...)
	segs = readLog(data)
	if len(segs) != 2 || segs[0].gen != 5 || len(segs[0].ops) != 2 || segs[1].gen != 6 || len(segs[1].ops) != 2 {
		t.Errorf("readLog of two generations = %+v", segs)
	}
	data = append(frame(t, 5, 1, put("a")), frame(t, 7, 1, put("stale"))...)
	if segs := readLog(data); count(segs) != 1 {
		t.Errorf("readLog read %d entries across a missing generation, want 1", count(segs))
	}
}

// TestRecoverNeverReusesAGeneration: frames left by a crashed batch of the stored
// generation (its first frame torn) must not pass for the next process's entries.
func TestRecoverNeverReusesAGeneration(t *testing.T) {
	root := t.TempDir()
	s := testStore(t, root)
	stored := s.rl.gen
	crash(t, s)
	put := &logOp{ID: "b", Record: json.RawMessage(`{"Id":"b"}`)}
	data := append(frame(t, stored, 1, put), frame(t, stored, 2, put)...)
	data[logHeader] ^= 0xff
	if err := os.WriteFile(filepath.Join(root, logFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s = testStore(t, root)
	defer closeStore(t, s)
	if s.rl.gen <= stored {
		t.Errorf("generation %d written again after a crash (stored %d)", s.rl.gen, stored)
	}
	if s.records["b"] != nil {
		t.Error("an entry behind a torn first frame was applied")
	}
}
