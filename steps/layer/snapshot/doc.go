// Package snapshot is the built-in layer stage: it unpacks image layers into containerd
// snapshots and prepares each container's read-write root filesystem on top of them.
//
// # Storage
//
// The snapshots live below <root>/snapshots/<driver>, where driver is "overlayfs" (containerd's
// overlay snapshotter, chosen when the kernel and the backing filesystem support overlayfs
// with several lower directories) or "native" (containerd's native snapshotter, which copies
// directories). WithSnapshotter forces the choice; the driver used is recorded in
// spec.RootFS.Driver, and Undo and Mount use the recorded one even when the configured
// choice has changed since.
//
// Three kinds of snapshot exist:
//
//   - An image layer is a committed snapshot named by its chain ID ("sha256:..."). It is
//     unpacked once, with containerd's pkg/archive (whiteouts, opaque directories, paths kept
//     inside the root), from the layer blob that the image store serves, and its diff ID
//     (the sha256 of the uncompressed stream) is checked before it is committed. It is shared
//     by every container and every image that has the same chain, and never removed by this
//     stage.
//   - An init layer is a committed snapshot named "init-<chain ID of the image>" ("init-empty"
//     for an image without layers) on top of the image's top layer. It holds what moby's init
//     layer holds: /.dockerenv, /etc/hosts, /etc/hostname, /etc/resolv.conf and /dev/console
//     as empty files (mode 0755), /dev/pts, /dev/shm, /proc and /sys as directories, and
//     /etc/mtab as a symlink to /proc/mounts, owned by the (remapped) root.
//   - A container's read-write layer is an active snapshot on top of the image's init layer,
//     keyed by the container ID, or "spare-<process>-<n>" when it was made ahead (see below);
//     the key is recorded in spec.RootFS.Key. It is the only thing a container owns, and the
//     only thing Undo removes. With overlayfs, the removal deletes the snapshot's metadata, renames its
//     directory into <root>/overlayfs/trash and returns; a goroutine deletes the trash once
//     the stage pauses (200 ms without a prepare or removal, or at 1024 directories: the
//     deletions would slow the fsyncs of the runs in flight), Close waits for it, and the
//     next process empties what a crash left there, so a removal costs one rename instead of
//     a recursive delete while nothing stays behind. With overlayfs, a container's snapshot
//     is prepared from a ready-made directory (fs and work inside, the modes containerd
//     gives them) kept in <root>/overlayfs/spare and refilled in the background: the prepare
//     is containerd's metadata transaction (storage.CreateSnapshot), a chown and one rename
//     into snapshots/<ID>, where the snapshotter would make three directories inside the
//     transaction; the result is the snapshot containerd's Prepare makes, mounted by the
//     snapshotter's own Mounts. An empty pool falls back to the snapshotter's Prepare, and
//     opening the driver empties spare/, so a spare cut short by a crash is never used.
//
// # Snapshots made ahead
//
// With overlayfs, and when the engine offers its records (core.Env.Host), the stage keeps a
// pool of active snapshots made and committed ahead on the init layers of the images used
// last (64 per image, for the last 8 images, refilled below half in one metadata
// transaction). A create whose image has one ready takes it, in memory: its layer stage
// writes nothing to the disk, and the create makes one durable write, its record's. Without
// the pool, the snapshot's metadata commit (two fsyncs) was about half of a create's time.
// The first create of an image prepares its own snapshot, keyed by its ID, and starts the
// pool; WithoutPool turns it off.
//
// Nothing is left behind: Undo removes the key recorded in the record, or, given only the
// ID, the one the pool handed to that container in this process; Close and PruneLayers
// remove the pool's snapshots; and the stage's first instance in a process (Sweep) removes
// every "spare-*" snapshot that no registered container names, which is what a killed
// process left (ready in its pool, or taken by a run that never registered). A stage built
// without the engine's records neither makes nor sweeps them. See snapshotPool.
//
// # Removing a container
//
// The undo of a rollback (a create that failed) removes the container's snapshot at once.
// The undo of a removal (core.UndoCauseOf(ctx).Remove) only notes the key in
// <root>/<driver>/removing, one append that the page cache keeps when the process dies,
// and returns: the removal is durable as the engine's deletion of the record, and the
// snapshot's removal, a commit of the snapshotter's metadata with two fsyncs, waits for a
// pause of the stage like the trash (or for 256 keys), then runs 16 at a time, so that the
// metadata store commits them together. A removal thus costs no fsync of the layer stage
// (1.2 ms became about 0.5 ms on the development machine, see the README), and a burst of
// removals shares its fsyncs. Nothing is left behind: a process that dies with keys noted
// leaves them to the next one that opens the driver, a prepare of a noted key removes the
// old snapshot first, PruneLayers and Close wait for the reaper, and a removal that fails
// in the background is logged and kept in the file for the next start. This is the model
// of containerd's garbage collector (the metadata says the snapshot is gone, the
// snapshotter catches up); the difference is that here the snapshot's key, not a scan of
// the references, says what to remove.
//
// Work in progress uses active snapshots keyed "extract-<random>-<name>"; they are removed
// when the work fails, and Sweep (run when the first instance of the stage in a process is
// built, while the process holds the state root) removes any that a crash left behind. An
// instance built later, beside instances serving runs (a reload), sweeps only a driver it
// opens itself: the work in progress of runs in flight is not a crash's leftover.
//
// # Why the init layer is shared
//
// moby creates an init layer per container ("<id>-init"): one more snapshot, one more
// mount, one more set of files and one more unmount for every create, and one more layer to
// remove. Its content depends only on the image below it (the init function looks at what
// the image has at those paths and writes the same entries every time), so it is identical
// for every container of an image. Here it is made and committed once per image, with the
// same single-flight discipline as the image layers, and a create costs one snapshotter
// Prepare. The container still sees exactly the tree moby's would show; only the layer
// boundary moved (the init entries sit in a shared lower layer instead of a private one),
// which no container can observe except through the host paths in GraphDriver.Data.
//
// # Concurrency
//
// All methods are safe for concurrent use. Within a process, each layer and each init layer
// is built by one goroutine while the others wait for it (per chain ID), and once known to be
// there it is remembered, so that a create for an unpacked image makes no other snapshotter
// call than its Prepare. Across processes the snapshotter's own database decides: a committed
// snapshot is looked up before unpacking, and a commit that finds the name taken counts as a
// success. The unpacking itself runs on a context detached from the caller's cancellation,
// so that one caller giving up does not fail the others waiting for the same layer.
//
// The overlay snapshotter keeps its metadata in bbolt and holds bbolt's writer lock while it
// makes a snapshot's directories and commits (two fsyncs), so parallel creates used to wait
// for each other's disk flushes. Its metadata store here commits in groups: the writes of
// the calls that arrive while a commit is in flight run one after the other in the next
// transaction and share its fsyncs, and a lone call commits at once. A call that fails rolls
// the group back; the others are retried, and the snapshot ID sequence is moved past the
// rolled-back IDs so that no ID is given twice (see groupStore). Together with the engine's
// record log, this lifted creates with 8 parallel callers from 544–679/s to 803–862/s on the
// 2-core test machine (fsync on).
//
// # Mounting
//
// Mount and Unmount serve `slipway mount NAME`: they mount a container's root filesystem at
// <root>/snapshots/mounts/<id> and take it down again; both are idempotent and keep no state
// in memory (the mount table is the truth), so separate processes may call them. Undo unmounts
// first.
package snapshot
