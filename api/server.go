package api

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/types/common"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/images"
)

// The API versions the server speaks.
const (
	// DefaultVersion is the version the server advertises in Api-Version and uses for
	// requests without a version prefix; it is also the highest it accepts.
	DefaultVersion = "1.50"
	// MinVersion is the lowest version a request may ask for (moby 28's minimum).
	MinVersion = "1.24"
)

// Server serves the Engine API subset over an engine. It is an http.Handler; create it with New.
type Server struct {
	eng     *core.Engine
	log     hclog.Logger
	version string

	// streams is closed by CloseStreams; event streams end when it is.
	closeOnce sync.Once
	streams   chan struct{}
}

// New returns the Engine API handler for eng. A nil log discards the logs.
func New(eng *core.Engine, log hclog.Logger) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Server{eng: eng, log: log, version: buildVersion(), streams: make(chan struct{})}
}

// CloseStreams ends the event streams in progress and makes new ones end at once; call it
// before http.Server.Shutdown, which waits for every handler to return.
func (s *Server) CloseStreams() {
	s.closeOnce.Do(func() { close(s.streams) })
}

// handlerFunc is one endpoint; a returned error is written as the JSON error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rt *route) error

// route is a matched request: its API version and the path parameter, if any.
type route struct {
	version string
	name    string
}

type versionKey struct{}

// ServeHTTP routes the request, checks its API version and writes errors as moby does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	path := r.URL.Path
	version := ""
	if strings.HasPrefix(path, "/v") {
		if i := strings.IndexByte(path[2:], '/'); i > 0 && isVersion(path[2:2+i]) {
			version, path = path[2:2+i], path[2+i:]
		}
	}
	h, rt := s.match(r.Method, path)
	if h == nil {
		writeJSON(rw, http.StatusNotFound, common.ErrorResponse{Message: "page not found"})
		s.logRequest(r, rw, start, nil)
		return
	}
	hdr := rw.Header()
	hdr.Set("Server", "Slipway/"+s.version+" (linux)")
	hdr.Set("Api-Version", DefaultVersion)
	hdr.Set("Ostype", runtime.GOOS)
	err := checkVersion(version)
	if version == "" {
		version = DefaultVersion
	}
	rt.version = version
	if err == nil {
		r = r.WithContext(context.WithValue(r.Context(), versionKey{}, version))
		err = h(rw, r, rt)
	}
	if err != nil {
		s.writeError(rw, r, rt, err)
	}
	s.logRequest(r, rw, start, err)
}

func (s *Server) logRequest(r *http.Request, rw *statusWriter, start time.Time, err error) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "duration", time.Since(start), "error", err)
	case s.log.IsDebug():
		args := []any{"method", r.Method, "path", r.URL.RequestURI(), "status", status, "duration", time.Since(start)}
		if err != nil {
			args = append(args, "error", err)
		}
		s.log.Debug("request", args...)
	}
}

// writeError writes err with the status of its class; nothing when the response began (the
// handler reports such errors in its stream).
func (s *Server) writeError(w *statusWriter, r *http.Request, rt *route, err error) {
	if w.status != 0 {
		s.log.Warn("error after the response began", "method", r.Method, "path", r.URL.Path, "error", err)
		return
	}
	code := StatusOf(err)
	if rt.version != "" && versionLess(rt.version, "1.24") {
		http.Error(w, err.Error(), code)
		return
	}
	writeJSON(w, code, common.ErrorResponse{Message: err.Error()})
}

// StatusOf returns the HTTP status of an error by its class, as moby's httpstatus.FromError
// maps its error classes: invalid argument 400, not found 404, conflict 409, failed
// precondition 400 (moby's mapping of gRPC FailedPrecondition), unavailable 503, and 500 for
// canceled, internal and unclassified errors.
func StatusOf(err error) int {
	switch errdefs.ClassOf(err) {
	case errdefs.InvalidArgumentClass, errdefs.FailedPreconditionClass:
		return http.StatusBadRequest
	case errdefs.NotFoundClass:
		return http.StatusNotFound
	case errdefs.ConflictClass:
		return http.StatusConflict
	case errdefs.UnavailableClass:
		return http.StatusServiceUnavailable
	}
	if _, ok := err.(notImplemented); ok {
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// notImplemented is an endpoint that Slipway answers but cannot honour (pulling).
type notImplemented struct{ msg string }

func (e notImplemented) Error() string { return e.msg }

// match returns the handler of method and path (without the version prefix).
func (s *Server) match(method, path string) (handlerFunc, *route) {
	rt := &route{}
	get, post, del := method == http.MethodGet, method == http.MethodPost, method == http.MethodDelete
	switch path {
	case "/_ping":
		if get || method == http.MethodHead {
			return s.ping, rt
		}
		return nil, nil
	case "/version":
		return only(get, s.getVersion), rt
	case "/info":
		return only(get, s.getInfo), rt
	case "/events":
		return only(get, s.getEvents), rt
	case "/containers/create":
		return only(post, s.postContainersCreate), rt
	case "/containers/json":
		return only(get, s.getContainersJSON), rt
	case "/images/load":
		return only(post, s.postImagesLoad), rt
	case "/images/create":
		return only(post, s.postImagesCreate), rt
	case "/images/json":
		return only(get, s.getImagesJSON), rt
	case "/volumes":
		return only(get, s.getVolumes), rt
	case "/volumes/create":
		if post {
			return s.postVolumesCreate, rt
		}
	case "/volumes/prune":
		if post {
			return s.postVolumesPrune, rt
		}
	}
	if name, ok := strings.CutPrefix(path, "/volumes/"); ok && name != "" {
		// moby's routes are /volumes/{name:.*}: GET /volumes/create is the volume "create".
		rt.name = name
		switch {
		case get:
			return s.getVolume, rt
		case del:
			return s.deleteVolume, rt
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(path, "/containers/"); ok && rest != "" {
		if name, ok := strings.CutSuffix(rest, "/json"); ok && get && name != "" && !strings.Contains(name, "/") {
			rt.name = name
			return s.getContainerJSON, rt
		}
		if del && !strings.Contains(rest, "/") {
			rt.name = rest
			return s.deleteContainer, rt
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(path, "/images/"); ok && rest != "" {
		// An image name may hold "/" and ":", so the routes match greedily as moby's do.
		if name, ok := strings.CutSuffix(rest, "/json"); ok && get && name != "" {
			rt.name = name
			return s.getImageJSON, rt
		}
		if name, ok := strings.CutSuffix(rest, "/tag"); ok && post && name != "" {
			rt.name = name
			return s.postImagesTag, rt
		}
		if del {
			rt.name = rest
			return s.deleteImage, rt
		}
	}
	return nil, nil
}

func only(ok bool, h handlerFunc) handlerFunc {
	if !ok {
		return nil
	}
	return h
}

// checkVersion refuses versions outside MinVersion..DefaultVersion with moby's texts.
func checkVersion(v string) error {
	if v == "" {
		return nil
	}
	if versionLess(v, MinVersion) {
		return errdefs.Errorf(errdefs.InvalidArgumentClass, "client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinVersion)
	}
	if versionLess(DefaultVersion, v) {
		return errdefs.Errorf(errdefs.InvalidArgumentClass, "client version %s is too new. Maximum supported API version is %s", v, DefaultVersion)
	}
	return nil
}

// isVersion reports whether s matches moby's version pattern [0-9.]+.
func isVersion(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// versionLess compares dotted versions numerically, a missing part counting as 0.
func versionLess(a, b string) bool { return compareVersions(a, b) < 0 }

func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// versionOf returns the API version of the request.
func versionOf(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey{}).(string); ok {
		return v
	}
	return DefaultVersion
}

// boolValue is moby's BoolValue: "", "0", "no", "false" and "none" are false.
func boolValue(r *http.Request, key string) bool {
	switch strings.ToLower(strings.TrimSpace(r.Form.Get(key))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// parseForm parses the query as moby's ParseForm does: a body it cannot parse as a form is
// not an error.
func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil && !strings.HasPrefix(err.Error(), "mime:") {
		return errdefs.InvalidArgument(err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// imageStore returns the engine's local image store.
func (s *Server) imageStore() (*images.Store, error) {
	st, ok := s.eng.Images().(*images.Store)
	if !ok {
		return nil, errdefs.Errorf(errdefs.FailedPreconditionClass, "the engine has no local image store")
	}
	return st, nil
}

// statusWriter records the status written, and passes Flush through.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// buildVersion is the module version the binary was built from, or "dev".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "dev"
}
