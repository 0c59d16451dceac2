package core

import (
	"errors"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// Emit appends ev to the engine's event log and publishes it to the subscribers, as the
// engine does with its own create and destroy events. It is how parts that live outside the
// engine (the image store's callers: load, untag, delete) report what they did, so that
// Events and Subscribe show one log.
//
// Type and Action are required; Time defaults to now (UTC); Seq is assigned by the log and
// whatever the caller set is ignored. The event is durable when Emit returns nil.
//
// Errors: InvalidArgument for a missing Type or Action, Unavailable when the engine is
// closed, Internal when the log cannot be written.
func (e *Engine) Emit(ev Event) error {
	if ev.Type == "" || ev.Action == "" {
		return errdefs.InvalidArgument(errors.New("event without a type or an action"))
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer e.runs.Done()
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	ev.Seq = 0
	if len(ev.Attrs) > 0 {
		a := make(map[string]string, len(ev.Attrs))
		for k, v := range ev.Attrs {
			a[k] = v
		}
		ev.Attrs = a
	}
	ev = e.st.event(ev)
	if err := e.st.rl.append(&logOp{Event: &ev}); err != nil {
		return errdefs.Internal(fmt.Errorf("log event %s %s of %s: %w", ev.Type, ev.Action, ev.ID, err))
	}
	e.st.publish(ev)
	return nil
}
