// Package spec holds the plain data that the stages of a Slipway create pipeline hand to each
// other: the request, the verified request, the resolved image, the merged config, the
// security profile, the root filesystem, the container's directories, the network settings
// and the container record.
//
// Every type here is data only: no methods with effects, no references to engine state. Each
// stage consumes the values named in its contract (see package core) and produces its own,
// so the hand-off is typed end to end and the same values can be carried over the plugin wire.
// Values passed to a stage are owned by the engine; a stage must copy what it wants to change.
package spec

import (
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Stage names one of the eight stages of the create pipeline.
type Stage string

// The eight stages, in pipeline order.
const (
	StageVerify   Stage = "verify"
	StageImage    Stage = "image"
	StageMerge    Stage = "merge"
	StageSecurity Stage = "security"
	StageLayer    Stage = "layer"
	StageMkdir    Stage = "mkdir"
	StageNetwork  Stage = "network"
	StageRegister Stage = "register"
)

// Stages lists the stages in the order a create runs them; undo runs the effectful ones in
// the reverse order. The network stage runs before the layer stage, as in moby since the
// create path was reordered (cheap bookkeeping before the first filesystem effect): an
// address conflict is found before a snapshot is made. The register stage runs in two
// halves: its name reservation comes before every other effect, its commit last.
var Stages = []Stage{StageVerify, StageImage, StageMerge, StageSecurity, StageNetwork, StageLayer, StageMkdir, StageRegister}

// Effectful reports whether the stage has effects that an undo must reverse.
func (s Stage) Effectful() bool {
	switch s {
	case StageSecurity, StageLayer, StageMkdir, StageNetwork, StageRegister:
		return true
	}
	return false
}

// Valid reports whether s is one of the eight stages.
func (s Stage) Valid() bool {
	for _, v := range Stages {
		if v == s {
			return true
		}
	}
	return false
}

// CreateRequest is what a client asks for: the body of POST /containers/create plus the name
// and platform query parameters, or the flags of `slipway create`.
type CreateRequest struct {
	// Name is the requested name, with or without the leading "/"; empty means generate one.
	Name             string
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
	// Platform is the requested platform; nil means the host's.
	Platform *ocispec.Platform
}

// Verified is the request after validation and after the host defaults were filled in. It
// is a deep copy: later stages may read it but never change the caller's request through it.
type Verified struct {
	// Name is the validated name without the leading "/", or empty when one is to be generated.
	Name             string
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
	Platform         *ocispec.Platform
	Warnings         []string
}

// Image is an image resolved in the local store for one platform.
type Image struct {
	// Ref is the reference as the user typed it ("busybox"); it is what moby shows as Config.Image.
	Ref string
	// Name is the normalised reference that matched ("docker.io/library/busybox:latest"),
	// or empty when the image was found by ID.
	Name string
	// ID is the image ID, the digest of its config ("sha256:...").
	ID string
	// Manifest is the descriptor of the platform-specific manifest.
	Manifest ocispec.Descriptor
	// Platform is the platform of the chosen image config.
	Platform ocispec.Platform
	// Config is the image's config: the OCI image config with Docker's extensions
	// (Healthcheck, OnBuild, Shell).
	Config dockerspec.DockerOCIImageConfig
	// Layers are the compressed layer descriptors, bottom first.
	Layers []ocispec.Descriptor
	// DiffIDs are the uncompressed layer digests, bottom first.
	DiffIDs []string
	// ChainID identifies the top of the layer chain ("sha256:..."), empty for an image with no layers.
	ChainID  string
	Warnings []string
}

// Merged is the container config after the image config was merged into it, with the
// command line computed as moby computes Path and Args.
type Merged struct {
	Config     *container.Config
	HostConfig *container.HostConfig
	Path       string
	Args       []string
	Warnings   []string
}

// Security is the security profile chosen for a container.
type Security struct {
	ProcessLabel    string
	MountLabel      string
	AppArmorProfile string
	// SeccompProfile is "unconfined", "builtin" or a profile's JSON.
	SeccompProfile  string
	NoNewPrivileges bool
	// SecurityOpt is the HostConfig.SecurityOpt after defaults (label=disable for privileged
	// and host modes, labels shared with --ipc/--pid container:X); nil when there is none.
	SecurityOpt []string
	// MaskedPaths and ReadonlyPaths are the HostConfig's after defaults: the request's, or
	// the OCI defaults when the request has none (nil) and the container is not privileged.
	// nil for a privileged container that asked for none, [] when the request said [].
	MaskedPaths   []string
	ReadonlyPaths []string
	Warnings      []string
}

// Mount is a filesystem mount in the form containerd's snapshotters return it.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Target  string   `json:"target,omitempty"`
	Options []string `json:"options,omitempty"`
}

// RootFS is a container's prepared root filesystem.
type RootFS struct {
	// Driver names the storage that holds it ("overlayfs", "native"), shown as Driver by inspect.
	Driver string
	// Key is the snapshot key of the container's read-write layer.
	Key string
	// Mounts mount the root filesystem when applied in order at one target.
	Mounts []Mount
	// Data is what inspect shows as GraphDriver.Data (UpperDir, WorkDir, ...).
	Data     map[string]string
	Warnings []string
}

// Dirs are the container's directories on the host, and its mount points: the volumes,
// binds and tmpfs mounts resolved from the config (--volumes-from, -v, --mount and the
// image's volumes) in the shape inspect shows them.
type Dirs struct {
	Root        string
	Checkpoints string
	// Mounts are the container's mount points, by destination.
	Mounts []container.MountPoint `json:",omitempty"`
}

// Network holds the network settings recorded for a container at create time.
type Network struct {
	NetworkMode string
	Networks    map[string]*network.EndpointSettings
	Ports       network.PortMap
	// Links are the legacy links registered at create (moby's registerLinks), in the form
	// inspect shows them: "/target:/container/alias", target being the container at the end
	// of the target's container: network chain. Empty on user-defined networks, where moby
	// registers no link.
	Links    []string `json:",omitempty"`
	Warnings []string
}

// Record is a container as the pipeline builds it and the engine stores it. During a run it
// is the run so far: the identity is set before any effect, and each stage's output field is
// nil until that stage has returned. A stage reads the fields of the stages before it and
// returns its own output; it never writes the record. Once registered, the record is what
// inspect shows and what remove hands to the undo chain.
type Record struct {
	// ID is the 64-hex container ID, fixed before any effect.
	ID string
	// Name is the reserved name without the leading "/", set by the register stage's Reserve.
	Name    string
	Created time.Time
	// Request is the verified request.
	Request  *Verified
	Image    *Image
	Merged   *Merged
	Security *Security
	RootFS   *RootFS
	Dirs     *Dirs
	Network  *Network
	// Implementations maps each stage to the name of the implementation that ran it
	// ("ipam", "plugin:netfile@sha256:..."); remove runs the undo chain with exactly these.
	Implementations map[Stage]string
	// State is "created" for a registered container and "dead" for one whose removal failed
	// half-way (see Dirty).
	State string
	// Dirty, when set, is why the last undo of this container failed.
	Dirty string `json:",omitempty"`
}

// Clone returns a shallow copy of r whose maps may be changed without touching r.
func (r *Record) Clone() *Record {
	c := *r
	if r.Implementations != nil {
		c.Implementations = make(map[Stage]string, len(r.Implementations))
		for k, v := range r.Implementations {
			c.Implementations[k] = v
		}
	}
	return &c
}
