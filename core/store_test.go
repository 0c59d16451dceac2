package core

import (
	"testing"
	"time"
)

// TestJournalEndLater checks the journal entries that a create ends later (endRunLater):
// the next journal transaction deletes them before its own write, so that the removal of
// the same container keeps its entry, and closing deletes the rest.
func TestJournalEndLater(t *testing.T) {
	s := testStore(t, t.TempDir())
	defer closeStore(t, s)
	for _, id := range []string{"created", "removed"} {
		if err := s.beginRun(&runRecord{ID: id, Op: opCreate, Start: time.Now()}); err != nil {
			t.Fatal(err)
		}
		s.endRunLater(id)
	}
	// The removal of "removed" begins while its create's entry is still queued for deletion.
	if err := s.beginRun(&runRecord{ID: "removed", Op: opRemove, Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	runs, err := s.runs()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].ID != "removed" || runs[0].Op != opRemove {
		t.Fatalf("journal = %+v, want only the removal in flight", runs)
	}
	s.endRunLater("later")
	if err := s.beginRun(&runRecord{ID: "later", Op: opCreate, Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.endRunLater("later")
	if err := s.flushEnded(); err != nil {
		t.Fatal(err)
	}
	if runs, err = s.runs(); err != nil || len(runs) != 1 || runs[0].ID != "removed" {
		t.Fatalf("journal after the flush = %+v, %v; want only the removal in flight", runs, err)
	}
}
