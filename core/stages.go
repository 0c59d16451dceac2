package core

import (
	"context"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core/spec"
)

// Verifier is the verify stage. Verify validates the request as moby does (Config,
// HostConfig, NetworkingConfig, the name) and returns a deep copy with the host defaults
// filled in after validation, plus warnings.
//
// Effects: none. The request is owned by the caller and must not be changed.
// Errors: InvalidArgument for any request moby refuses, with moby's message.
// Concurrency: called from many goroutines at once.
type Verifier interface {
	Verify(ctx context.Context, req *spec.CreateRequest) (*spec.Verified, error)
}

// ImageResolver is the image stage. ResolveImage finds rec.Request.Config.Image in the local
// image store for rec.Request.Platform (the host's when nil) and returns the resolved image
// with the platform-mismatch warning moby gives.
//
// Effects: none. Errors: NotFound "No such image: REF", InvalidArgument for a reference that
// does not parse. Concurrency: called from many goroutines at once.
type ImageResolver interface {
	ResolveImage(ctx context.Context, rec *spec.Record) (*spec.Image, error)
}

// Merger is the merge stage. Merge fills the container config from rec.Image with moby's
// rules and computes Path and Args.
//
// Effects: none; it works on copies. Errors: InvalidArgument ("No command specified", log
// config errors). Concurrency: called from many goroutines at once.
type Merger interface {
	Merge(ctx context.Context, rec *spec.Record) (*spec.Merged, error)
}

// Undoer is implemented by every stage with effects. Undo reverses the effects of the stage
// for rec.ID. rec holds what was known when the undo started: the stage's own output once
// the stage returned one, also when the run failed after it (a cancelled caller, a failed
// check). After a crash that output (and those of the stages after it) may be nil, and
// Undo must then derive what to release from the ID alone, or leave it to a sweep at the
// next start that does not depend on the run.
//
// Undo must be idempotent and must succeed when the effects never happened or only partly
// happened (CNI's DEL rules). It runs on a context detached from the caller's cancellation,
// with its own deadline.
type Undoer interface {
	Undo(ctx context.Context, rec *spec.Record) error
}

// Securer is the security stage. Secure chooses the SELinux process and mount labels (and
// reserves the MCS label), the AppArmor and seccomp profiles and no-new-privileges from
// rec.Merged.HostConfig.SecurityOpt.
//
// Effects: an MCS label reservation; Undo releases it. Errors: InvalidArgument for a bad
// option, NotFound for a missing --ipc/--pid container. Concurrency: many goroutines.
type Securer interface {
	Undoer
	Secure(ctx context.Context, rec *spec.Record) (*spec.Security, error)
}

// Layerer is the layer stage. PrepareRootFS makes sure every layer of rec.Image is unpacked
// into a committed snapshot (shared by every container of the image), then prepares the
// container's read-write snapshot, labelled with rec.Security.MountLabel.
//
// Effects: the container's snapshots, keyed by rec.ID; Undo removes them and never a shared
// image layer. The undo of a removal (UndoCauseOf) may leave the removal of the snapshots
// to the background once it is certain to happen, also across a crash of the process, and
// a later PrepareRootFS of the same ID must then not find them. Errors: NotFound for missing image content, Internal and Unavailable for
// storage faults. Concurrency: many goroutines, also for the same image.
type Layerer interface {
	Undoer
	PrepareRootFS(ctx context.Context, rec *spec.Record) (*spec.RootFS, error)
}

// DirMaker is the mkdir stage. MakeDirs creates the container's root directory (0710, owner
// the current uid, group the remapped root gid) and its checkpoint directory (0700). It
// resolves the container's mount points with moby's rules and messages (--volumes-from
// first, then -v binds and volumes and --mount, then an anonymous volume for every
// Config.Volumes entry nothing covers), making named volumes that are missing and copying
// the image's content into a new, empty volume; and it makes Config.WorkingDir inside the
// root filesystem (rec.RootFS), which it mounts for a moment only when there is such work.
// The returned Dirs carry the mount points that inspect and ps show.
//
// Effects: the directories, the volumes it made and the container's references to the
// volumes it uses. Undo needs only the ID and reads the undo's cause (UndoCauseOf): it drops
// the references, then on a rollback removes the volumes the create made that nobody else
// uses, on a removal with RemoveVolumes the container's anonymous volumes nobody else uses
// (never named ones, never on a plain removal), and last the directories with everything
// inside. Errors: InvalidArgument for a bad mount or volume spec (a bad name, a relative or
// duplicate destination, a missing --volumes-from container, a missing --mount bind source,
// a working directory that cannot be made), NotFound for a volume driver other than local,
// Conflict for a volume name in use with another driver, FailedPrecondition when the stage
// was built without the volume store or the container lookup it needs, Internal for the
// host's failures.
type DirMaker interface {
	Undoer
	MakeDirs(ctx context.Context, rec *spec.Record) (*spec.Dirs, error)
}

// Networker is the network stage. ConfigureNetwork sets the default network mode, validates
// the endpoints of rec.Request.NetworkingConfig, leases addresses and returns the network
// settings to record.
//
// Effects: address leases keyed by rec.ID; Undo releases them. Errors: InvalidArgument for a
// bad endpoint, Conflict for an address in use, Unavailable when the pool is exhausted.
type Networker interface {
	Undoer
	ConfigureNetwork(ctx context.Context, rec *spec.Record) (*spec.Network, error)
}

// Registrar is the register stage, in two halves. Reserve runs before any other effect: it
// reserves rec.Name (or a generated name when it is empty) for rec.ID and returns the name,
// so that a conflict is found before the expensive stages run; reserving the same name
// again for the same ID is a no-op. Register commits the complete record: from then on the
// container exists, is listed and survives a restart.
//
// Effects: the name and the record; Undo deletes the record and releases the name.
// Errors: InvalidArgument for a bad name, Conflict "The container name "/x" is already in
// use by container "ID". ..." for a taken one.
type Registrar interface {
	Undoer
	Reserve(ctx context.Context, rec *spec.Record) (name string, err error)
	Register(ctx context.Context, rec *spec.Record) error
}

// Checker is a check step: a read-only hook placed before or after a stage that may add
// warnings or veto the create by returning an error (class InvalidArgument or
// FailedPrecondition for a policy refusal).
type Checker interface {
	Check(ctx context.Context, rec *spec.Record) (warnings []string, err error)
}

// Closer is implemented by stages that hold resources; the engine closes them when the
// snapshot that built them is no longer used.
type Closer interface {
	Close() error
}

// Host is what the engine offers the stages: read access to the containers it knows.
type Host interface {
	// Container returns the container with that ID, unique ID prefix or name; NotFound when
	// there is none, InvalidArgument when a prefix is ambiguous.
	Container(ctx context.Context, ref string) (*spec.Record, error)
	// Containers returns every registered container.
	Containers(ctx context.Context) ([]*spec.Record, error)
}

// ImageService is the local image store as the engine and the stages see it.
type ImageService interface {
	// Resolve finds ref for platform (nil: the host's). NotFound "No such image: REF".
	Resolve(ctx context.Context, ref string, platform *ocispec.Platform) (*spec.Image, error)
	// OpenBlob opens the blob with digest dgst. NotFound when it is missing.
	OpenBlob(ctx context.Context, dgst string) (io.ReadCloser, error)
}

// Env is what an implementation is built with.
type Env struct {
	// Root is the engine's state root; an implementation keeps its files below it.
	Root string
	// DB is the engine's state database; an implementation keeps its data in its own
	// top-level buckets.
	DB     *bolt.DB
	Logger hclog.Logger
	Host   Host
	// Images is the image store; nil while the image store itself is being built.
	Images ImageService
	// Store is the engine's registry of names and records, which the register stage
	// commits to.
	Store Store
	// Shared holds state that every instance of an implementation in one engine must share
	// (the IPAM's lease table, say): a reload builds new instances beside the old ones, and
	// both serve runs for a while.
	Shared *Shared
	// Events is the engine's event log (the engine itself, through Engine.Emit); nil outside
	// an engine. A part that does what docker reports as an event of its own (the volume
	// store making or removing a volume, whoever asked) logs it here, so that every caller
	// gets the event once.
	Events EventSink
}

// EventSink takes events for the engine's event log. Emit is Engine.Emit: it may be called
// from any goroutine, and its error (the engine closed, the log not written) leaves what the
// event reports done.
type EventSink interface {
	Emit(Event) error
}

// Shared is a set of engine-wide values, each made once on first use.
type Shared struct {
	mu sync.Mutex
	m  map[string]any
}

// Get returns the value for key, making it with make on first use. Keys are namespaced by
// the implementation ("ipam/leases").
func (s *Shared) Get(key string, make func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		return v, nil
	}
	v, err := make()
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string]any{}
	}
	s.m[key] = v
	return v, nil
}

// LayerPruner is implemented by layer stages that keep image layers shared between
// containers. PruneLayers removes the unpacked layers no image needs any more: keep reports
// whether a chain ID (the top of an image's layer chain or a prefix of one; "" for an image
// without layers) belongs to an image still in the store. A layer under a container is never
// removed. It returns what it removed. Engine.PruneLayers calls it after an image is deleted.
type LayerPruner interface {
	PruneLayers(ctx context.Context, keep func(chainID string) bool) (removed []string, err error)
}

// ChainLister is implemented by image stores that can list the layer chains of their
// images: every chain ID prefix of every platform image, and "" for an image without
// layers. Engine.PruneLayers keeps exactly these.
type ChainLister interface {
	ChainIDs(ctx context.Context) (map[string]bool, error)
}

// Mounter is implemented by layer stages that can mount a container's root filesystem on
// the host (slipway mount). Both methods are idempotent; Undo unmounts as well.
type Mounter interface {
	Mount(ctx context.Context, rec *spec.Record) (string, error)
	Unmount(ctx context.Context, rec *spec.Record) error
}
