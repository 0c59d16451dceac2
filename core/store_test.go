package core

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
)

func liveRuns(t *testing.T, j *journal) map[string]*runRecord {
	t.Helper()
	runs, err := j.runs()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*runRecord{}
	for _, r := range runs {
		m[r.ID] = r
	}
	return m
}

func runIDs[V any](m map[string]V) string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func openTestJournal(t *testing.T, root string) *journal {
	t.Helper()
	j, err := openJournal(root, false, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.close() })
	return j
}

// TestJournalReplays writes runs that begin, end and fail, and reads them back as a new
// process does after a crash: the file as the writes left it.
func TestJournalReplays(t *testing.T) {
	root := t.TempDir()
	j := openTestJournal(t, root)
	for _, id := range []string{"a", "b", "c"} {
		if err := j.put(&runRecord{ID: id, Op: opCreate, Start: time.Now()}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.end("a"); err != nil {
		t.Fatal(err)
	}
	if err := j.put(&runRecord{ID: "c", Op: opCreate, Failed: "undo layer: boom"}, true); err != nil {
		t.Fatal(err)
	}
	if err := j.put(&runRecord{ID: "d", Op: opRemove}, false); err != nil {
		t.Fatal(err)
	}
	live := liveRuns(t, openTestJournal(t, root))
	if runIDs(live) != "b c d" || live["c"].Failed != "undo layer: boom" || live["d"].Op != opRemove {
		t.Fatalf("runs after reopen: %s (%+v)", runIDs(live), live)
	}
}

// TestJournalTornWrite checks that a write cut short is ignored, and what came before it
// is kept.
func TestJournalTornWrite(t *testing.T) {
	root := t.TempDir()
	j := openTestJournal(t, root)
	for _, id := range []string{"a", "b"} {
		if err := j.put(&runRecord{ID: id, Op: opCreate}, false); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2] ^= 0xff
	live := map[string]json.RawMessage{}
	readJournal(data, live)
	if runIDs(live) != "a" {
		t.Errorf("runs with the last write torn: %q, want a", runIDs(live))
	}
	// A frame of another generation after the current ones (left by an older file's
	// content) ends the journal too.
	other := appendFrame(nil, j.gen+1, j.seq+1, []byte(`{"put":{"id":"stale","op":"create"}}`))
	data, _ = os.ReadFile(filepath.Join(root, journalFile))
	live = map[string]json.RawMessage{}
	readJournal(append(data, other...), live)
	if runIDs(live) != "a b" {
		t.Errorf("runs with a frame of another generation: %q, want a b", runIDs(live))
	}
}

// TestJournalCompacts runs many short runs beside two long ones: the file is rewritten
// with the runs in flight once it has grown past journalCompactAt, and keeps them.
func TestJournalCompacts(t *testing.T) {
	root := t.TempDir()
	j := openTestJournal(t, root)
	for _, id := range []string{"long1", "long2"} {
		if err := j.put(&runRecord{ID: id, Op: opCreate}, false); err != nil {
			t.Fatal(err)
		}
	}
	gen, compacted := j.gen, false
	for i := 0; !compacted; i++ {
		id := fmt.Sprintf("short%d", i)
		if err := j.put(&runRecord{ID: id, Op: opCreate, Name: strings.Repeat("n", 100)}, false); err != nil {
			t.Fatal(err)
		}
		if err := j.end(id); err != nil {
			t.Fatal(err)
		}
		compacted = j.gen != gen
		if i > 100000 {
			t.Fatal("the journal never compacted")
		}
	}
	if fi, err := os.Stat(filepath.Join(root, journalFile)); err != nil || fi.Size() >= journalCompactAt/2 {
		t.Fatalf("journal after compaction: %v, %v", fi.Size(), err)
	}
	if err := j.put(&runRecord{ID: "after", Op: opRemove}, false); err != nil {
		t.Fatal(err)
	}
	if got := runIDs(liveRuns(t, openTestJournal(t, root))); got != "after long1 long2" {
		t.Errorf("runs after compaction and reopen: %q", got)
	}
}

// TestJournalTakesOverJournalDB opens a state root of an earlier version, whose journal
// was a bbolt database: its runs are taken over and the database removed; an unreadable
// one is moved aside.
func TestJournalTakesOverJournalDB(t *testing.T) {
	root := t.TempDir()
	db, err := bolt.Open(filepath.Join(root, journalDB), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketRuns)
		if err != nil {
			return err
		}
		for _, id := range []string{"x", "y"} {
			v, _ := json.Marshal(&runRecord{ID: id, Op: opCreate, Failed: "old"})
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	live := liveRuns(t, openTestJournal(t, root))
	if runIDs(live) != "x y" || live["x"].Failed != "old" {
		t.Fatalf("runs taken over: %q", runIDs(live))
	}
	if _, err := os.Stat(filepath.Join(root, journalDB)); !os.IsNotExist(err) {
		t.Errorf("journal.db after the take-over: %v", err)
	}
	if got := runIDs(liveRuns(t, openTestJournal(t, root))); got != "x y" {
		t.Errorf("runs at the next open: %q", got)
	}

	root = t.TempDir()
	if err := os.WriteFile(filepath.Join(root, journalDB), []byte("not a bbolt file, torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := runIDs(liveRuns(t, openTestJournal(t, root))); got != "" {
		t.Errorf("runs from an unreadable journal.db: %q", got)
	}
	aside, _ := filepath.Glob(filepath.Join(root, journalDB+".corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("unreadable journal.db not moved aside: %v", aside)
	}
}

// TestJournalReopen checks that opening a journal that ends cleanly writes nothing and
// writes on after its last frame, and that one with bytes after its last frame (a torn
// write) is rewritten, without them.
func TestJournalReopen(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, journalFile)
	j, err := openJournal(root, false, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := j.put(&runRecord{ID: id, Op: opCreate}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.end("a"); err != nil {
		t.Fatal(err)
	}
	j.close()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	j = openTestJournal(t, root)
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("opening a clean journal rewrote it (size %d to %d)", before.Size(), after.Size())
	}
	if err := j.put(&runRecord{ID: "c", Op: opRemove}, false); err != nil {
		t.Fatal(err)
	}
	j.close()
	if got := runIDs(liveRuns(t, openTestJournal(t, root))); got != "b c" {
		t.Fatalf("runs after writing on: %q, want b c", got)
	}

	// A torn write after the last frame: the file is rewritten without it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(appendFrame(nil, 1, 1, []byte(`{"put":{"id":"torn","op":"create"}}`))[:30])
	f.Close()
	before, _ = os.Stat(path)
	j = openTestJournal(t, root)
	after, _ = os.Stat(path)
	if os.SameFile(before, after) {
		t.Error("a journal with a torn tail was written on in place")
	}
	if err := j.put(&runRecord{ID: "d", Op: opCreate}, false); err != nil {
		t.Fatal(err)
	}
	if got := runIDs(liveRuns(t, openTestJournal(t, root))); got != "b c d" {
		t.Errorf("runs after the torn tail: %q, want b c d", got)
	}
}
