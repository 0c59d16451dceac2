package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
)

// jsonMessage is one message of a JSON message stream, with the "error" key the docker CLI 28
// still prints (jsonstream.Message of the API module dropped it).
type jsonMessage struct {
	Stream      string     `json:"stream,omitempty"`
	Status      string     `json:"status,omitempty"`
	ID          string     `json:"id,omitempty"`
	ErrorDetail *jsonError `json:"errorDetail,omitempty"`
	Error       string     `json:"error,omitempty"`
}

type jsonError struct {
	Message string `json:"message"`
}

func (s *Server) postImagesLoad(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	st, err := s.imageStore()
	if err != nil {
		return err
	}
	var opts images.LoadOptions
	for _, v := range r.Form["platform"] {
		var p ocispec.Platform
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("failed to parse platform: %w", err))
		}
		opts.Platforms = append(opts.Platforms, p)
	}
	// quiet defaults to true when absent, as in moby (docker-py sends none); Slipway has no
	// per-layer progress to show, so both modes print the result lines.
	res, lerr := st.Load(r.Context(), r.Body, opts)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if lerr != nil {
		// As moby: the status is 200 and the failure is the last message of the stream.
		s.log.Info("image load failed", "error", lerr)
		return enc.Encode(jsonMessage{ErrorDetail: &jsonError{Message: lerr.Error()}, Error: lerr.Error()})
	}
	for _, l := range res.Lines {
		if err := enc.Encode(jsonMessage{Stream: l + "\n"}); err != nil {
			return err
		}
	}
	return nil
}

// postImagesCreate answers a pull: Slipway has no registry client. The docker CLI calls it
// after a create found no image and prints the message.
func (s *Server) postImagesCreate(w http.ResponseWriter, r *http.Request, _ *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	ref := r.Form.Get("fromImage")
	if tag := r.Form.Get("tag"); ref != "" && tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	if ref == "" {
		ref = r.Form.Get("fromSrc")
	}
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		ref = reference.FamiliarString(named)
	}
	return notImplemented{fmt.Sprintf("slipway does not pull images: load %s with docker load", ref)}
}

func (s *Server) getImagesJSON(w http.ResponseWriter, r *http.Request, _ *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	f, err := parseFilters(r.Form.Get("filters"))
	if err != nil {
		return err
	}
	if err := f.validate("reference", "dangling", "label", "label!", "before", "since", "until"); err != nil {
		return err
	}
	dangling := ""
	for _, v := range f.values("dangling") {
		switch strings.ToLower(v) {
		case "true", "1":
			dangling = "true"
		case "false", "0":
			dangling = "false"
		default:
			return errdefs.InvalidArgument(fmt.Errorf("invalid filter 'dangling=%s'", v))
		}
	}
	st, err := s.imageStore()
	if err != nil {
		return err
	}
	list, err := st.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]image.Summary, 0, len(list))
	for _, im := range list {
		if dangling == "true" && len(im.RepoTags) > 0 || dangling == "false" && len(im.RepoTags) == 0 {
			continue
		}
		if !f.matchLabels("label", im.Labels) {
			continue
		}
		if f.has("reference") && !matchReference(f.values("reference"), im.RepoTags) {
			continue
		}
		if im.RepoTags == nil {
			im.RepoTags = []string{}
		}
		if im.RepoDigests == nil {
			im.RepoDigests = []string{}
		}
		out = append(out, im)
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchReference is moby's reference filter: a pattern (path.Match syntax) matches a tag in
// familiar form, or its name without the tag.
func matchReference(patterns, tags []string) bool {
	for _, t := range tags {
		name := t
		if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
			name = t[:i]
		}
		for _, p := range patterns {
			if ok, _ := path.Match(p, t); ok {
				return true
			}
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
	}
	return false
}

func (s *Server) getImageJSON(w http.ResponseWriter, r *http.Request, rt *route) error {
	st, err := s.imageStore()
	if err != nil {
		return err
	}
	name := rt.name
	resp, err := st.Inspect(r.Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	st, err := s.imageStore()
	if err != nil {
		return err
	}
	name := rt.name
	// force cannot remove an image that a container uses: the container's layers depend on it.
	resp, err := st.Delete(r.Context(), name, s.eng.ImageUser)
	if err != nil {
		return err
	}
	if resp == nil {
		resp = []image.DeleteResponse{}
	}
	return writeJSON(w, http.StatusOK, resp)
}
