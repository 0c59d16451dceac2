package core

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// The engine's buckets in the state database. Implementations keep their data in buckets of
// their own, named after them.
var (
	bucketContainers = []byte("containers")
	bucketNames      = []byte("names")
	bucketRuns       = []byte("runs")
	bucketEvents     = []byte("events")
	// bucketMeta holds the engine's own settings of the database (the record log's
	// generation).
	bucketMeta = []byte("meta")
)

// maxEvents bounds the persisted event log; the oldest events are dropped first.
const maxEvents = 10000

// Store is the engine's registry of containers and names, as the register stage sees it.
// Names live in memory while a run holds them and on disk once the record is committed, so
// a crash can never leave a reserved name behind.
type Store interface {
	// ReserveName reserves name (without "/") for id. Reserving a name again for the same
	// id is a no-op; a name held by another container or run is Conflict with moby's text.
	ReserveName(id, name string) error
	// ReleaseNames releases every name reserved for id that is not committed.
	ReleaseNames(id string)
	// Commit stores the complete record, its name and the create event durably (one entry
	// of the record log), ends the journal entry of the run that created it and publishes
	// the event.
	Commit(ctx context.Context, rec *spec.Record) error
	// Delete removes the record of id and its name, if there is one; it is idempotent.
	Delete(ctx context.Context, id string) error
}

// Event is one entry of the engine's event log, in the shape docker events prints.
type Event struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Type   string            `json:"type"`
	Action string            `json:"action"`
	ID     string            `json:"id"`
	Attrs  map[string]string `json:"attributes,omitempty"`
}

// runRecord is the journal entry of a run in flight: what recovery needs to finish its undo.
// It is on disk before the first effect of the run.
type runRecord struct {
	ID    string    `json:"id"`
	Op    string    `json:"op"` // "create" or "remove"
	Name  string    `json:"name,omitempty"`
	Start time.Time `json:"start"`
	// Implementations are the implementations of the effectful stages, by stage.
	Implementations map[spec.Stage]string `json:"implementations"`
	// Failed is set when an undo of this run failed: the run is kept for recover.
	Failed string `json:"failed,omitempty"`
	// Volumes is set for a removal that also removes anonymous volumes (rm -v).
	Volumes bool `json:"volumes,omitempty"`
}

const (
	opCreate = "create"
	opRemove = "remove"
)

// store implements Store over bbolt and keeps an in-memory index of records and names.
type store struct {
	db *bolt.DB
	// rl is the write-ahead log of records, names and events; they reach db at its
	// checkpoints.
	rl *recordLog
	// j is the journal: runs in flight. It has a file of its own so that its writes can
	// skip fsync (see Options.SyncJournal) while records stay durable.
	j   *journal
	log hclog.Logger

	mu       sync.RWMutex
	records  map[string]*spec.Record // committed containers by ID
	names    map[string]string       // name -> ID, committed and reserved
	reserved map[string][]string     // ID -> names reserved by runs in flight
	byPrefix []string                // sorted IDs, rebuilt lazily
	sorted   bool

	evmu  sync.Mutex
	evSeq uint64
	subs  map[chan Event]struct{}
}

func openStore(db *bolt.DB, j *journal, root string, syncRecords bool, log hclog.Logger) (*store, error) {
	rl, err := openRecordLog(db, root, syncRecords, log)
	if err != nil {
		return nil, errdefs.Internal(fmt.Errorf("open the record log: %w", err))
	}
	s := &store{
		log:      log,
		db:       db,
		rl:       rl,
		j:        j,
		records:  map[string]*spec.Record{},
		names:    map[string]string{},
		reserved: map[string][]string{},
		subs:     map[chan Event]struct{}{},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketContainers, bucketNames, bucketEvents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := rl.recover(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			var r spec.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("container record %s: %w", k, err)
			}
			s.records[r.ID] = &r
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketNames).ForEach(func(k, v []byte) error {
			s.names[string(k)] = string(v)
			return nil
		}); err != nil {
			return err
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			s.evSeq = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		rl.f.Close()
		return nil, errdefs.Internal(fmt.Errorf("load state: %w", err))
	}
	return s, nil
}

// recordJSON encodes records as encoding/json does, except that struct fields holding their
// zero value are left out. A record's moby types have about 150 fields, most of them empty:
// a typical record shrinks from 7 KB to 4 KB, which is written twice (the record log, then
// slipway.db at a checkpoint). Decoding into a fresh value gives the same record either
// way, since an absent field keeps its zero value; records written before are read as
// they are.
var recordJSON = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.OmitZeroStructFields(true))

// encodeRecord returns the JSON of rec as it is stored (see recordJSON).
func encodeRecord(rec *spec.Record) ([]byte, error) { return jsonv2.Marshal(rec, recordJSON) }

func nameConflict(name, id string) error {
	return errdefs.Conflict(fmt.Errorf("Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, id))
}

func (s *store) ReserveName(id, name string) error {
	name = strings.TrimPrefix(name, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, ok := s.names[name]; ok {
		if owner == id {
			return nil
		}
		return nameConflict(name, owner)
	}
	s.names[name] = id
	s.reserved[id] = append(s.reserved[id], name)
	return nil
}

func (s *store) ReleaseNames(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.reserved[id] {
		if s.names[n] == id {
			if _, committed := s.records[id]; !committed {
				delete(s.names, n)
			}
		}
	}
	delete(s.reserved, id)
}

func (s *store) Commit(ctx context.Context, rec *spec.Record) error {
	if rec.ID == "" || rec.Name == "" {
		return errdefs.Internal(errors.New("commit of a record without ID or name"))
	}
	s.mu.RLock()
	owner := s.names[rec.Name]
	s.mu.RUnlock()
	if owner != rec.ID {
		return errdefs.Internal(fmt.Errorf("commit of %s: name %q is not reserved for it", rec.ID, rec.Name))
	}
	rec = rec.Clone()
	rec.State = "created"
	data, err := encodeRecord(rec)
	if err != nil {
		return errdefs.Internal(fmt.Errorf("encode record %s: %w", rec.ID, err))
	}
	ev := s.event(Event{Time: time.Now().UTC(), Type: "container", Action: "create", ID: rec.ID, Attrs: eventAttrs(rec)})
	if err := s.rl.append(&logOp{ID: rec.ID, Record: data, Name: rec.Name, Event: &ev}); err != nil {
		return errdefs.Internal(fmt.Errorf("commit container %s: %w", rec.ID, err))
	}
	s.mu.Lock()
	s.records[rec.ID] = rec
	s.sorted = false
	delete(s.reserved, rec.ID)
	s.mu.Unlock()
	s.publish(ev)
	// The record is durable: the run is over. If the process dies before the journal entry
	// is gone, recovery finds the record and only drops the entry.
	if err := s.endRun(rec.ID); err != nil {
		s.log.Warn("journal entry of a created container not ended; recovery will drop it", "id", rec.ID, "error", err)
	}
	return nil
}

func (s *store) Delete(ctx context.Context, id string) error {
	s.mu.RLock()
	rec := s.records[id]
	s.mu.RUnlock()
	if rec == nil {
		// The in-memory index mirrors the database: nothing to delete, no write to pay.
		s.ReleaseNames(id)
		return nil
	}
	ev := s.event(Event{Time: time.Now().UTC(), Type: "container", Action: "destroy", ID: id, Attrs: eventAttrs(rec)})
	if err := s.rl.append(&logOp{ID: id, Name: rec.Name, Event: &ev}); err != nil {
		return errdefs.Internal(fmt.Errorf("delete container %s: %w", id, err))
	}
	s.mu.Lock()
	delete(s.records, id)
	for n, owner := range s.names {
		if owner == id {
			delete(s.names, n)
		}
	}
	delete(s.reserved, id)
	s.sorted = false
	s.mu.Unlock()
	s.publish(ev)
	return nil
}

// markDirty records that undoing container id failed; the record stays, state "dead".
func (s *store) markDirty(id string, cause error) error {
	s.mu.Lock()
	rec := s.records[id]
	s.mu.Unlock()
	if rec == nil {
		return nil
	}
	rec = rec.Clone()
	rec.State = "dead"
	rec.Dirty = cause.Error()
	data, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	if err := s.rl.append(&logOp{ID: id, Record: data}); err != nil {
		return err
	}
	s.mu.Lock()
	s.records[id] = rec
	s.mu.Unlock()
	return nil
}

// beginRun writes the journal entry of a run before its first effect.
func (s *store) beginRun(r *runRecord) error { return s.j.put(r, false) }

// endRun deletes the journal entry of a run that finished or whose undo finished.
func (s *store) endRun(id string) error { return s.j.end(id) }

// failRun keeps the journal entry of a run whose undo failed, with the reason, and makes
// it durable whatever the journal's sync setting: a failed undo is never lost.
func (s *store) failRun(r *runRecord, cause error) error {
	r.Failed = cause.Error()
	return s.j.put(r, true)
}

func (s *store) runs() ([]*runRecord, error) { return s.j.runs() }

func (s *store) get(ref string) (*spec.Record, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, errdefs.InvalidArgument(errors.New("no container name or ID given"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.records[ref]; ok {
		return r, nil
	}
	if id, ok := s.names[strings.TrimPrefix(ref, "/")]; ok {
		if r, ok := s.records[id]; ok {
			return r, nil
		}
	}
	if !s.sorted {
		s.byPrefix = s.byPrefix[:0]
		for id := range s.records {
			s.byPrefix = append(s.byPrefix, id)
		}
		sort.Strings(s.byPrefix)
		s.sorted = true
	}
	i := sort.SearchStrings(s.byPrefix, ref)
	if i < len(s.byPrefix) && strings.HasPrefix(s.byPrefix[i], ref) {
		if i+1 < len(s.byPrefix) && strings.HasPrefix(s.byPrefix[i+1], ref) {
			return nil, errdefs.InvalidArgument(fmt.Errorf("multiple IDs found with provided prefix: %s", ref))
		}
		return s.records[s.byPrefix[i]], nil
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
}

func (s *store) all() []*spec.Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*spec.Record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	return out
}

func eventAttrs(rec *spec.Record) map[string]string {
	a := map[string]string{"name": rec.Name}
	if rec.Merged != nil && rec.Merged.Config != nil {
		for k, v := range rec.Merged.Config.Labels {
			a[k] = v
		}
	}
	if rec.Image != nil {
		a["image"] = rec.Image.Ref
	}
	return a
}

// event gives ev the next sequence number of the event log.
func (s *store) event(ev Event) Event {
	s.evmu.Lock()
	s.evSeq++
	ev.Seq = s.evSeq
	s.evmu.Unlock()
	return ev
}

func (s *store) publish(ev Event) {
	s.evmu.Lock()
	defer s.evmu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- ev:
		default: // a slow subscriber loses events rather than stalling creates
		}
	}
}

// events returns the logged events with since <= time <= until (zero: unbounded).
func (s *store) events(since, until time.Time) ([]Event, error) {
	// The log's entries are in the database once it is checkpointed.
	if err := s.rl.checkpoint(); err != nil {
		return nil, err
	}
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return nil
			}
			if (!since.IsZero() && ev.Time.Before(since)) || (!until.IsZero() && ev.Time.After(until)) {
				return nil
			}
			out = append(out, ev)
			return nil
		})
	})
	return out, err
}
