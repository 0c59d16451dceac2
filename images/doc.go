// Package images is Slipway's local image store: the images that `slipway image load` (and
// the Engine API's POST /images/load) brought in, and that the image stage resolves a
// container's image reference against.
//
// # Content and index
//
// Blobs (indexes, manifests, configs, layers) live content-addressed in
// <root>/content/blobs/sha256/<hex>. Each is written to a temporary file in
// <root>/content/ingest, hashed while it is written, fsynced and renamed into place, so a
// blob file is either complete and correct or absent. The index lives in the engine's bbolt
// database, in the top-level bucket "images": image ID -> JSON record (names, target
// descriptor, per-platform manifest, config and layers) and name -> image ID.
//
// # Loading
//
// Load accepts what `docker save` and `docker load` know: docker-save tarballs (manifest.json,
// old and Docker 25+ layouts) and OCI image layout tarballs (oci-layout and index.json, with
// nested and multi-platform indexes), each plain or compressed (gzip, zstd, bzip2; sniffed by
// magic bytes). Every blob is checked against its digest and every layer, gzip, zstd or plain,
// against its diffID in the config. A load is all or nothing: the index changes in one
// transaction after everything was verified, and on failure the blobs that load added and no
// image refers to are removed again.
//
// # Image IDs and references
//
// An image's ID is the digest of its config when it has one platform (as docker's graph
// driver store has it) and the digest of its index when it has several. References resolve
// as docker resolves them (github.com/distribution/reference): "busybox" is
// docker.io/library/busybox:latest; "name@sha256:..." matches the image of that repository
// with that index, manifest or config digest; "sha256:<64 hex>", bare 64 hex and unique
// prefixes of at least four hex digits match image IDs. A missing image is NotFound
// "No such image: REF" with REF as moby prints it.
//
// # Platforms
//
// Resolve picks, among the platforms of an image, the best match for the requested platform
// (containerd's platforms.Only, with moby's fallback for images without a variant), or for the
// host (platforms.DefaultSpec with the amd64 microarchitecture level from go-archvariant)
// when none was requested; then, as moby does, it warns rather than fails when the image does
// not match the host.
//
// A Store is safe for concurrent use. Only one Store may use a state root at a time.
package images
