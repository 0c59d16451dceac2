package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
)

// jsonMessage is one message of a JSON message stream, in the order of moby's
// jsonmessage.JSONMessage, with the keys the docker CLI 28 still reads ("progress", "error")
// that jsonstream.Message of the API module dropped.
type jsonMessage struct {
	Stream          string               `json:"stream,omitempty"`
	Status          string               `json:"status,omitempty"`
	Progress        *jsonstream.Progress `json:"progressDetail,omitempty"`
	ProgressMessage string               `json:"progress,omitempty"`
	ID              string               `json:"id,omitempty"`
	ErrorDetail     *jsonError           `json:"errorDetail,omitempty"`
	Error           string               `json:"error,omitempty"`
}

type jsonError struct {
	Message string `json:"message"`
}

// streamWriter writes the messages of a JSON message stream as moby's streamformatter does:
// one object per line, ended by "\r\n", flushed at once.
type streamWriter struct {
	w   http.ResponseWriter
	err error
}

func (sw *streamWriter) write(m jsonMessage) error {
	if sw.err != nil {
		return sw.err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, sw.err = sw.w.Write(append(b, '\r', '\n')); sw.err != nil {
		return sw.err
	}
	if f, ok := sw.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// progressBar is the "progress" text moby's daemon puts beside progressDetail: a bar of 50
// cells (the daemon has no terminal, so it takes the width of a wide one) and the byte
// counts in go-units' human sizes.
func progressBar(current, total int64) string {
	if current <= 0 && total <= 0 {
		return ""
	}
	if total <= 0 {
		return fmt.Sprintf("%8v", units.HumanSize(float64(current)))
	}
	filled := min(int(float64(current)/float64(total)*100)/2, 50)
	bar := "[" + strings.Repeat("=", filled) + ">" + strings.Repeat(" ", 50-filled) + "] "
	if current > total {
		return bar + fmt.Sprintf("%8v", units.HumanSize(float64(current)))
	}
	return bar + fmt.Sprintf("%8v/%v", units.HumanSize(float64(current)), units.HumanSize(float64(total)))
}

// shortDigest is moby's stringid.TruncateID: the first 12 hex digits, without the algorithm.
func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
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
	// As moby: quiet defaults to true when absent (docker-py sends none), and the status is
	// 200 whatever happens next; a failure is the last message of the stream.
	quiet := true
	if _, ok := r.Form["quiet"]; ok {
		quiet = boolValue(r, "quiet")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	sw := &streamWriter{w: w}
	if !quiet {
		opts.Progress = func(p images.LayerProgress) {
			_ = sw.write(jsonMessage{
				Status:          "Loading layer",
				Progress:        &jsonstream.Progress{Current: p.Current, Total: p.Total},
				ProgressMessage: progressBar(p.Current, p.Total),
				ID:              shortDigest(p.DiffID),
			})
		}
	}
	res, lerr := st.Load(r.Context(), r.Body, opts)
	if lerr != nil {
		s.log.Info("image load failed", "error", lerr)
		return sw.write(jsonMessage{ErrorDetail: &jsonError{Message: lerr.Error()}, Error: lerr.Error()})
	}
	s.emit(st.LoadEvents(r.Context(), res)...)
	for _, l := range res.Lines {
		if err := sw.write(jsonMessage{Stream: l + "\n"}); err != nil {
			return nil // the client went away
		}
	}
	return nil
}

// emit logs image events in the engine's event log; a failure is logged, the operation having
// happened.
func (s *Server) emit(evs ...core.Event) {
	for _, ev := range evs {
		if err := s.eng.Emit(ev); err != nil {
			s.log.Warn("image event not logged", "action", ev.Action, "id", ev.ID, "error", err)
		}
	}
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
	// The ID and labels for the events, read before the image may go.
	id, labels := "", map[string]string(nil)
	if insp, err := st.Inspect(r.Context(), name); err == nil {
		id = insp.ID
		if insp.Config != nil {
			labels = insp.Config.Labels
		}
	}
	// force cannot remove an image that a container uses: the container's layers depend on it.
	resp, err := st.Delete(r.Context(), name, s.eng.ImageUser)
	if err != nil {
		return err
	}
	s.emit(images.DeleteEvents(id, labels, resp)...)
	if deleted(resp) {
		// The image's unpacked layers go too, unless another image shares them; a failure
		// here leaves them for the next deletion and does not undo this one.
		if _, err := s.eng.PruneLayers(r.Context()); err != nil {
			s.log.Warn("pruning the layers of a deleted image failed", "image", name, "error", err)
		}
	}
	if resp == nil {
		resp = []image.DeleteResponse{}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// deleted reports whether a delete response removed an image, not only untagged one.
func deleted(resp []image.DeleteResponse) bool {
	for _, r := range resp {
		if r.Deleted != "" {
			return true
		}
	}
	return false
}

// postImagesTag is POST /images/{name}/tag?repo=R&tag=T: 201 with no body once the image has
// the name R:T (R:latest without a tag), moved from another image that had it, and the event
// "tag" is logged. As moby's handler: no repo is no error (RepoTagReference returns no
// reference and no error, which errdefs.InvalidParameter keeps nil), so the answer is 200
// with no body and nothing tagged; a repo or tag that does not parse is 400 with
// reference's "invalid reference format…" texts; a missing image 404 "No such image: REF".
func (s *Server) postImagesTag(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	repo := r.Form.Get("repo")
	if repo == "" {
		return nil
	}
	named, err := repoTagReference(repo, r.Form.Get("tag"))
	if err != nil {
		return errdefs.InvalidArgument(err)
	}
	st, err := s.imageStore()
	if err != nil {
		return err
	}
	id, name, err := st.Tag(r.Context(), rt.name, named.String())
	if err != nil {
		return err
	}
	s.emit(st.TagEvent(r.Context(), id, name))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// repoTagReference is moby's httputils.RepoTagReference for a repo that is not empty: the
// normalised repository with the tag, or "latest".
func repoTagReference(repo, tag string) (reference.NamedTagged, error) {
	ref, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return nil, err
	}
	if _, ok := ref.(reference.Digested); ok {
		return nil, errors.New("cannot import digest reference")
	}
	if tag != "" {
		return reference.WithTag(ref, tag)
	}
	nt, ok := reference.TagNameOnly(ref).(reference.NamedTagged)
	if !ok {
		return nil, fmt.Errorf("unexpected reference: %q", ref.String())
	}
	return nt, nil
}
