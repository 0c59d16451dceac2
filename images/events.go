package images

import (
	"context"
	"fmt"
	"maps"

	"github.com/moby/moby/api/types/image"
	bolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
)

// The actions of the image events, as moby names them.
const (
	ActionLoad   = "load"
	ActionTag    = "tag"
	ActionUntag  = "untag"
	ActionDelete = "delete"
)

// ImageSize returns the size of the image a container records as its image ID (a config
// digest, or the ID of a multi-platform image, whose host platform is then taken), as docker
// images shows it. moby adds it to a container's read-write layer for SizeRootFs.
//
// Errors: NotFound "No such image: ID" when no image has that ID.
func (s *Store) ImageSize(ctx context.Context, id string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, errdefs.Canceled(err)
	}
	var size int64
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r != nil {
			size, found = r.Platforms[s.defaultPlatform(r)].size(), true
			return nil
		}
		all, err := allRecords(tx)
		if err != nil {
			return err
		}
		for _, r := range all {
			for _, p := range r.Platforms {
				if p.Config.Digest.String() == id {
					size, found = p.size(), true
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, errdefs.NotFound(fmt.Errorf("No such image: %s", id))
	}
	return size, nil
}

// Labels returns the labels of the image with that ID or reference (its host platform's
// config), or nil when there is no such image: what moby copies into the attributes of an
// image event.
func (s *Store) Labels(ctx context.Context, ref string) map[string]string {
	resp, err := s.Inspect(ctx, ref)
	if err != nil || resp.Config == nil {
		return nil
	}
	return maps.Clone(resp.Config.Labels)
}

// imageEvent is moby's LogImageEvent: Actor ID the image ID, the image's labels and "name"
// as attributes.
func imageEvent(action, id, name string, labels map[string]string) core.Event {
	attrs := maps.Clone(labels)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if name != "" {
		attrs["name"] = name
	}
	return core.Event{Type: "image", Action: action, ID: id, Attrs: attrs}
}

// LoadEvents are the events docker logs for a load: "load" for each image, with the image
// ID as Actor ID and as its name attribute (moby's tarexport). Labels are looked up in the
// store.
func (s *Store) LoadEvents(ctx context.Context, res LoadResult) []core.Event {
	out := make([]core.Event, 0, len(res.Images))
	for _, im := range res.Images {
		out = append(out, imageEvent(ActionLoad, im.ID, im.ID, s.Labels(ctx, im.ID)))
	}
	return out
}

// DeleteEvents are the events docker logs for a removal of the image with that ID and labels
// (taken before the removal) that answered resp: "untag" for each name removed, with the
// name as attribute, then "delete" with the ID as name and no labels, the image being gone.
func DeleteEvents(id string, labels map[string]string, resp []image.DeleteResponse) []core.Event {
	var out []core.Event
	for _, r := range resp {
		switch {
		case r.Untagged != "":
			out = append(out, imageEvent(ActionUntag, id, r.Untagged, labels))
		case r.Deleted != "":
			out = append(out, imageEvent(ActionDelete, r.Deleted, r.Deleted, nil))
		}
	}
	return out
}

// TagEvent is the event docker logs for a tag: "tag" with the image ID as Actor ID, the new
// name (familiar form) and the image's labels as attributes (moby's TagImage).
func (s *Store) TagEvent(ctx context.Context, id, name string) core.Event {
	return imageEvent(ActionTag, id, name, s.Labels(ctx, id))
}
