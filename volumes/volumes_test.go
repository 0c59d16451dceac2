package volumes_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
	"github.com/slipwayhq/slipway/volumes"
)

// host is a behavioural fake of the engine's view: a fixed set of registered containers.
type host []*spec.Record

func (h host) Container(ctx context.Context, ref string) (*spec.Record, error) {
	for _, r := range h {
		if r.ID == ref {
			return r, nil
		}
	}
	return nil, errdefs.NotFound(os.ErrNotExist)
}

func (h host) Containers(ctx context.Context) ([]*spec.Record, error) { return h, nil }

var _ core.Host = host(nil)

func openDB(t *testing.T) (string, *bolt.DB) {
	t.Helper()
	root, err := os.MkdirTemp("/var/tmp", "slipway-volumes-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	db, err := bolt.Open(filepath.Join(root, "slipway.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return root, db
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ name, err string }{
		{"data", ""},
		{"a1_b.c-d", ""},
		{"x", "volume name is too short, names should be at least two alphanumeric characters"},
		{"./data", `"./data" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`},
		{"_x", `"_x" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`},
		{"a/b", `"a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := volumes.ValidateName(tc.name)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err || !errdefs.IsInvalidArgument(err)):
				t.Errorf("got %v, want InvalidArgument %s", err, tc.err)
			}
		})
	}
	if n := volumes.NewAnonymousName(); len(n) != 64 || volumes.ValidateName(n) != nil {
		t.Errorf("anonymous name %q", n)
	}
}

func TestCreateListRemovePrune(t *testing.T) {
	root, db := openDB(t)
	ctx := context.Background()
	s, err := volumes.New(ctx, root, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Create(ctx, "data", volumes.CreateOptions{Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != filepath.Join(root, "volumes/data/_data") || v.Driver != "local" || v.Labels["a"] != "b" || v.Anonymous {
		t.Errorf("created %+v", v)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("data directory: %v", err)
	}
	again, err := s.Create(ctx, "data", volumes.CreateOptions{})
	if err != nil || again.CreatedAt != v.CreatedAt || again.Labels["a"] != "b" {
		t.Errorf("create of an existing volume: %+v %v", again, err)
	}
	anon, err := s.Create(ctx, "", volumes.CreateOptions{})
	if err != nil || !anon.Anonymous || len(anon.Name) != 64 {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
	if _, err := s.Create(ctx, "x2", volumes.CreateOptions{Options: map[string]string{"size": "1g"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("driver option: %v", err)
	}
	if _, err := s.Create(ctx, "x3", volumes.CreateOptions{Driver: "nfs"}); !errdefs.IsNotFound(err) ||
		err.Error() != `create x3: error looking up volume plugin nfs: plugin "nfs" not found` {
		t.Errorf("unknown driver: %v", err)
	}
	if l := s.List(); len(l) != 2 {
		t.Errorf("list = %+v", l)
	}
	// A restart reads the metadata back, and the references from the registered containers.
	user := &spec.Record{ID: core.NewID(), Dirs: &spec.Dirs{Mounts: []container.MountPoint{{Type: mount.TypeVolume, Name: "data"}}}}
	s2, err := volumes.New(ctx, root, db, host{user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Get("data"); err != nil || got.Labels["a"] != "b" || !got.CreatedAt.Equal(v.CreatedAt) {
		t.Errorf("after restart: %+v %v", got, err)
	}
	err = s2.Remove(ctx, "data")
	if want := "remove data: volume is in use - [" + user.ID + "]"; !errdefs.IsConflict(err) || err.Error() != want {
		t.Errorf("remove in use: %v, want Conflict %s", err, want)
	}
	if err := s2.Remove(ctx, "nosuch"); !errdefs.IsNotFound(err) || err.Error() != "get nosuch: no such volume" {
		t.Errorf("remove missing: %v", err)
	}
	pruned, err := s2.Prune(ctx, false)
	if err != nil || len(pruned) != 1 || pruned[0] != anon.Name {
		t.Errorf("prune = %v %v, want [%s]", pruned, err, anon.Name)
	}
	s2.Release(user.ID)
	if err := s2.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "volumes")); len(ents) != 0 {
		t.Errorf("directories left: %d", len(ents))
	}
	s3, err := volumes.New(ctx, root, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := s3.List(); len(l) != 0 {
		t.Errorf("metadata left: %+v", l)
	}
}

// TestPruneFuncAndAPI checks what prune chooses (unused, no driver options, matched) and the
// space it reports, and the API rendering of an anonymous volume.
func TestPruneFuncAndAPI(t *testing.T) {
	root, db := openDB(t)
	ctx := context.Background()
	s, err := volumes.New(ctx, root, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	anon, err := s.Create(ctx, "", volumes.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := anon.API().Labels; len(l) != 1 || l[volumes.AnonymousLabel] != "" {
		t.Errorf("anonymous volume labels %v, want only %s", l, volumes.AnonymousLabel)
	}
	if _, err := s.Create(ctx, "used", volumes.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireExisting(ctx, "used", "c1"); err != nil {
		t.Fatal(err)
	}
	named, err := s.Create(ctx, "named", volumes.CreateOptions{Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if api := named.API(); api.Scope != "local" || api.Options == nil || api.Labels["k"] != "v" || len(api.Labels) != 1 {
		t.Errorf("named volume as the API shows it: %+v", api)
	}
	os.WriteFile(filepath.Join(named.Mountpoint, "a"), []byte("123"), 0o644)
	os.WriteFile(filepath.Join(named.Mountpoint, "b"), []byte("4567"), 0o644)
	os.Link(filepath.Join(named.Mountpoint, "b"), filepath.Join(named.Mountpoint, "c")) // counted once
	names, reclaimed, err := s.PruneFunc(ctx, func(v volumes.Volume) bool { return v.Labels["k"] == "v" })
	if err != nil || len(names) != 1 || names[0] != "named" || reclaimed != 7 {
		t.Errorf("prune k=v: %v %d %v, want [named] 7", names, reclaimed, err)
	}
	names, _, err = s.PruneFunc(ctx, func(volumes.Volume) bool { return true })
	if err != nil || len(names) != 1 || names[0] != anon.Name {
		t.Errorf("prune all: %v %v, want the anonymous volume only (used is in use)", names, err)
	}
	if _, err := s.Get("used"); err != nil {
		t.Errorf("the volume in use was pruned: %v", err)
	}
}
