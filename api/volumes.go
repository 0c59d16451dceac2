package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/volume"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/volumes"
)

// The volume endpoints serve the engine's local volume store (package volumes), the one its
// mkdir stage makes and references volumes in, as moby's volume router and service do for
// the local driver. Swarm cluster volumes do not exist here: a ClusterVolumeSpec is ignored
// as moby ignores it when the node is no swarm manager.

// volumeStore returns the engine's volume store.
func (s *Server) volumeStore(r *http.Request) (*volumes.Store, error) {
	return volumes.Open(r.Context(), s.eng.Env())
}

// getVolumes is GET /volumes: the volumes matching the filters dangling, name, driver and
// label, as a volume.ListResponse.
func (s *Server) getVolumes(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	f, err := parseFilters(r.Form.Get("filters"))
	if err != nil {
		return fmt.Errorf("error reading volume filters: %w", err)
	}
	if err := f.validate("dangling", "name", "driver", "label"); err != nil {
		return err
	}
	dangling, hasDangling := false, f.has("dangling")
	if hasDangling {
		switch vals := f.values("dangling"); {
		case len(vals) == 1 && (vals[0] == "true" || vals[0] == "1"):
			dangling = true
		case len(vals) == 1 && (vals[0] == "false" || vals[0] == "0"):
		default:
			return invalidFilter("dangling", vals)
		}
	}
	st, err := s.volumeStore(r)
	if err != nil {
		return err
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}}
	for _, v := range st.List() {
		api := v.API()
		if !f.exact("driver", api.Driver) || !f.match("name", api.Name) || !f.matchLabels("label", api.Labels) {
			continue
		}
		if hasDangling && (len(st.Users(v.Name)) == 0) != dangling {
			continue
		}
		out.Volumes = append(out.Volumes, api)
	}
	return writeJSON(w, http.StatusOK, out)
}

// invalidFilter is moby's invalidFilter error: "invalid filter 'key=v1,v2'".
func invalidFilter(key string, vals []string) error {
	msg := "invalid filter '" + key
	if vals != nil {
		msg += "=" + strings.Join(vals, ",")
	}
	return errdefs.InvalidArgument(fmt.Errorf("%s'", msg))
}

// getVolume is GET /volumes/{name}.
func (s *Server) getVolume(w http.ResponseWriter, r *http.Request, rt *route) error {
	st, err := s.volumeStore(r)
	if err != nil {
		return err
	}
	v, err := st.Get(rt.name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v.API())
}

// postVolumesCreate is POST /volumes/create with a volume.CreateRequest: the volume is made
// unless it exists, which is returned as it is (201 either way, as moby answers).
func (s *Server) postVolumesCreate(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if err := checkJSON(r); err != nil {
		return err
	}
	var req volume.CreateRequest
	if r.Body != nil && r.ContentLength != 0 {
		data, err := readBody(r)
		if err != nil {
			return err
		}
		if err := decodeOne(data, &req); err != nil {
			return err
		}
	}
	st, err := s.volumeStore(r)
	if err != nil {
		return err
	}
	v, err := st.Create(r.Context(), req.Name, volumes.CreateOptions{Driver: req.Driver, Labels: req.Labels, Options: req.DriverOpts})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v.API())
}

// deleteVolume is DELETE /volumes/{name}: 204; 404 "get NAME: no such volume" unless force;
// 409 "remove NAME: volume is in use - [ID...]" while a container uses it, force or not.
func (s *Server) deleteVolume(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	st, err := s.volumeStore(r)
	if err != nil {
		return err
	}
	if err := st.Remove(r.Context(), rt.name); err != nil && !(boolValue(r, "force") && errdefs.IsNotFound(err)) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// postVolumesPrune is POST /volumes/prune: removes the unused volumes without driver options
// that match the filters label, label! and all; without all=true only anonymous ones (API
// 1.42 and later; before, all of them), as a volume.PruneReport.
func (s *Server) postVolumesPrune(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	f, err := parseFilters(r.Form.Get("filters"))
	if err != nil {
		return err
	}
	if versionLess(rt.version, "1.42") {
		if f["all"] == nil {
			f["all"] = map[string]bool{}
		}
		f["all"]["true"] = true
	}
	all := false
	switch vals := f.values("all"); {
	case len(vals) > 1:
		return errdefs.InvalidArgument(fmt.Errorf("invalid filter 'all=%s': only one value is expected", vals))
	case len(vals) == 1:
		ok, err := strconv.ParseBool(vals[0])
		if err != nil {
			return errdefs.InvalidArgument(fmt.Errorf("invalid filter 'all': %w", err))
		}
		all = ok
	}
	if err := f.validate("label", "label!", "all"); err != nil {
		return err
	}
	st, err := s.volumeStore(r)
	if err != nil {
		return err
	}
	names, reclaimed, err := st.PruneFunc(r.Context(), func(v volumes.Volume) bool {
		l := v.API().Labels
		if !all {
			if _, ok := l[volumes.AnonymousLabel]; !ok {
				return false
			}
		}
		return f.matchLabels("label", l) && (!f.has("label!") || !f.matchLabels("label!", l))
	})
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	return writeJSON(w, http.StatusOK, volume.PruneReport{VolumesDeleted: names, SpaceReclaimed: reclaimed})
}
