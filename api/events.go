package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/events"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
)

// eventMessage is events.Message with the keys that API versions below 1.52 still carry.
type eventMessage struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

// parseUnixTime reads the since and until parameters: Unix seconds with an optional
// fraction ("1735689600.000000000"), as the docker CLI sends them.
func parseUnixTime(key, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	secStr, fracStr, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, errdefs.InvalidArgument(fmt.Errorf("invalid value for %s: %q is not a Unix time", key, v))
	}
	var nsec int64
	if hasFrac && fracStr != "" {
		if len(fracStr) > 9 {
			fracStr = fracStr[:9]
		}
		fracStr += strings.Repeat("0", 9-len(fracStr))
		if nsec, err = strconv.ParseInt(fracStr, 10, 64); err != nil {
			return time.Time{}, errdefs.InvalidArgument(fmt.Errorf("invalid value for %s: %q is not a Unix time", key, v))
		}
	}
	return time.Unix(sec, nsec), nil
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request, rt *route) error {
	if err := parseForm(r); err != nil {
		return err
	}
	since, err := parseUnixTime("since", r.Form.Get("since"))
	if err != nil {
		return err
	}
	until, err := parseUnixTime("until", r.Form.Get("until"))
	if err != nil {
		return err
	}
	f, err := parseFilters(r.Form.Get("filters"))
	if err != nil {
		return err
	}
	if err := f.validate("container", "event", "image", "label", "type", "daemon", "network", "volume", "plugin",
		"node", "service", "secret", "config", "scope"); err != nil {
		return err
	}
	var timeout <-chan time.Time
	onlyPast := false
	if !until.IsZero() {
		if until.Before(since) {
			return errdefs.InvalidArgument(fmt.Errorf("`since` time (%s) cannot be after `until` time (%s)", r.Form.Get("since"), r.Form.Get("until")))
		}
		now := time.Now()
		onlyPast = until.Before(now)
		if !onlyPast {
			t := time.NewTimer(until.Sub(now))
			defer t.Stop()
			timeout = t.C
		}
	}
	// Subscribe before reading the log, and skip live events already sent from it.
	var live <-chan core.Event
	if !onlyPast {
		ch, cancel := s.eng.Subscribe()
		defer cancel()
		live = ch
	}
	var past []core.Event
	if !since.IsZero() || !until.IsZero() {
		if past, err = s.eng.Events(r.Context(), since, until); err != nil {
			return err
		}
	}
	legacy := versionLess(rt.version, "1.52")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var lastSeq uint64
	send := func(ev core.Event) error {
		if !eventMatches(f, ev) {
			return nil
		}
		return enc.Encode(toMessage(ev, legacy))
	}
	for _, ev := range past {
		if err := send(ev); err != nil {
			return nil
		}
		lastSeq = max(lastSeq, ev.Seq)
	}
	flush()
	if onlyPast {
		return nil
	}
	ctx := r.Context()
	for {
		select {
		case ev := <-live:
			if ev.Seq <= lastSeq && ev.Seq != 0 {
				continue
			}
			if !since.IsZero() && ev.Time.Before(since) {
				continue
			}
			if err := send(ev); err != nil {
				return nil // the client went away
			}
			flush()
		case <-timeout:
			return nil
		case <-ctx.Done():
			return nil
		case <-s.streams:
			return nil
		}
	}
}

// eventMatches applies the events filters as moby does: type, event (action), container
// (ID, ID prefix or name), image (reference attribute or ID), volume (name or its prefix)
// and label (attributes).
func eventMatches(f filters, ev core.Event) bool {
	if !f.exact("type", ev.Type) || !f.exact("event", ev.Action) {
		return false
	}
	if f.has("container") {
		if ev.Type != string(events.ContainerEventType) || !matchIDOrName(f.values("container"), ev.ID, ev.Attrs["name"]) {
			return false
		}
	}
	if f.has("image") && !matchImage(f, ev) {
		return false
	}
	// moby's fuzzyMatchName: the actor ID or its "name" attribute, or a prefix of either.
	if f.has("volume") && !matchIDOrName(f.values("volume"), ev.ID, ev.Attrs["name"]) {
		return false
	}
	return f.matchLabels("label", ev.Attrs)
}

// matchImage is moby's image filter of events: the actor ID, or the image name (the "name"
// attribute of an image event, the "image" attribute of others), also without its tag.
func matchImage(f filters, ev core.Event) bool {
	nameAttr := "image"
	if ev.Type == string(events.ImageEventType) {
		nameAttr = "name"
	}
	name := ev.Attrs[nameAttr]
	return f.exact("image", ev.ID) || f.exact("image", name) || f.exact("image", stripTag(ev.ID)) || f.exact("image", stripTag(name))
}

// stripTag is the familiar name of a reference without tag or digest; what does not parse is
// kept as it is.
func stripTag(s string) string {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return s
	}
	return reference.FamiliarName(named)
}

func matchIDOrName(vals []string, id, name string) bool {
	for _, v := range vals {
		if v == name || strings.TrimPrefix(v, "/") == name || (len(v) >= 1 && strings.HasPrefix(id, v)) {
			return true
		}
	}
	return false
}

func toMessage(ev core.Event, legacy bool) eventMessage {
	attrs := ev.Attrs
	if attrs == nil {
		attrs = map[string]string{}
	}
	m := eventMessage{Message: events.Message{
		Type:     events.Type(ev.Type),
		Action:   events.Action(ev.Action),
		Actor:    events.Actor{ID: ev.ID, Attributes: attrs},
		Scope:    "local",
		Time:     ev.Time.Unix(),
		TimeNano: ev.Time.UnixNano(),
	}}
	if legacy {
		// moby filled the deprecated keys for container and image events only.
		switch ev.Type {
		case string(events.ContainerEventType):
			m.Status, m.ID, m.From = ev.Action, ev.ID, attrs["image"]
		case string(events.ImageEventType):
			m.Status, m.ID = ev.Action, ev.ID
		}
	}
	return m
}
