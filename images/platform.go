package images

import (
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/go-archvariant"
)

// HostPlatform is the platform moby calls the host's ("maximumSpec"): containerd's default
// spec, with the amd64 microarchitecture level (v1..v4) that the CPU supports.
func HostPlatform() ocispec.Platform {
	p := platforms.DefaultSpec()
	if p.Architecture == "amd64" {
		p.Variant = archvariant.AMD64Variant()
	}
	return p
}

// onlyWithFallback matches what platforms.Only(p) matches (lower variants of the same
// architecture, 386 on amd64, older arm on arm64), and, for an image that names no variant,
// the same OS and architecture after normalisation: moby's OnlyPlatformWithFallback.
type onlyWithFallback struct {
	want platforms.MatchComparer
	norm ocispec.Platform
}

func matcherFor(p ocispec.Platform) onlyWithFallback {
	return onlyWithFallback{want: platforms.Only(p), norm: platforms.Normalize(p)}
}

func (m onlyWithFallback) Match(p ocispec.Platform) bool {
	if m.want.Match(p) {
		return true
	}
	if p.Variant != "" {
		return false
	}
	n := platforms.Normalize(p)
	return n.OS == m.norm.OS && n.Architecture == m.norm.Architecture
}

func (m onlyWithFallback) Less(a, b ocispec.Platform) bool { return m.want.Less(a, b) }

// pick returns the index of the best platform for want among have, or -1 when none matches.
func pick(want ocispec.Platform, have []platformRecord) int {
	m := matcherFor(want)
	best := -1
	for i := range have {
		if !m.Match(have[i].Platform) {
			continue
		}
		if best < 0 || m.Less(have[i].Platform, have[best].Platform) {
			best = i
		}
	}
	return best
}

// platformMismatchWarning is moby's warning for an image whose platform is not the host's
// when no platform was requested.
func platformMismatchWarning(img, host ocispec.Platform) string {
	return fmt.Sprintf("The requested image's platform (%s) does not match the detected host platform (%s) and no specific platform was requested",
		platforms.Format(img), platforms.Format(host))
}

// formatPlatforms lists the platforms of an image for an error message.
func formatPlatforms(ps []platformRecord) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = platforms.Format(p.Platform)
	}
	return strings.Join(s, ", ")
}

// formatPlatformSpec formats a requested platform as moby's messages show it.
func formatPlatformSpec(p ocispec.Platform) string { return platforms.Format(p) }
