// Package core is Slipway's engine: the contracts of the eight create stages, the pipeline
// that runs them, the journal that makes every run crash-safe, and the Engine type that
// embedders use.
//
// # A create, step by step
//
// Engine.Create takes a spec.CreateRequest (what docker create sends) and runs it through
// the immutable snapshot of the pipeline that was current when it started:
//
//  1. verify (Verifier) validates the request with moby's checks and fills in host defaults.
//  2. image (ImageResolver) resolves the image reference in the local store for a platform.
//  3. merge (Merger) merges the image config into the container config and computes the
//     command line.
//
// Nothing so far has an effect. Before the first one, the run is written to the journal
// (journal.log, an append-only file written without fsync unless Options.SyncJournal is set;
// see journal), so that a crash at any later instant leaves a record of what to undo:
//
//  4. register, first half (Registrar.Reserve): the name is reserved, or generated; a
//     conflict ends the run before anything expensive happened.
//  5. security (Securer): SELinux labels, AppArmor, seccomp, no-new-privileges.
//  6. network (Networker): network mode, endpoint settings, address leases.
//  7. layer (Layerer): image layers unpacked once into shared snapshots, then the
//     container's read-write snapshot.
//  8. mkdir (DirMaker): the container's directories.
//  9. register, second half (Registrar.Register): the record is committed with one
//     fdatasynced entry of the record log (records.log, applied to the state database
//     slipway.db at checkpoints, see recordLog), then the run's journal entry is ended;
//     the container now exists in state "created". A crash between the two leaves a
//     journal entry whose record exists, which recovery only drops.
//
// Check steps (Checker) may run before or after any stage to add warnings or veto.
//
// # Undo
//
// Every effectful stage implements Undoer. The engine registers a stage's undo before it
// calls the stage (a stage that failed half-way may have done part of its work), and on any
// failure (an error, a panic, a cancelled context) runs the undos in strict reverse order, on
// a context detached from the caller's with its own deadline, attempting all of them and
// joining their errors onto the original one. Undos are idempotent and tolerate effects
// that never happened. If an undo fails, the run stays in the journal, marked failed, and is
// retried by Recover; it is never dropped.
//
// Removing a container runs the same undo chain, with the implementations recorded in the
// container's record (by name), even when the current pipeline uses others.
//
// After a crash, Open (and Recover) finds the runs still in the journal and finishes them:
// a half-done create is undone, a half-done removal completed. Undos then receive a record
// that holds only the ID and the name, and derive what to release from the ID.
//
// # Implementations
//
// A Pipeline maps every stage to an Impl: a name and a constructor that receives an Env
// (state root, state database, logger, a read-only view of the containers, the image store).
// The default implementations are registered by package steps/standard; embedders replace
// any of them with Pipeline.With. Errors carry the classes of package core/errdefs.
package core
