// Package store is the built-in register stage: it reserves container names with moby's
// rules and commits container records to the engine's state database.
//
// Reserve takes the requested name, or generates an adjective_surname name. A generated
// name is reserved atomically on each try, so concurrent creates never get the same name
// (moby #6025); after six tries that all collide it falls back to the first 12 characters
// of the ID, as moby does. Register commits the record through core.Store in the same
// transaction that ends the run's journal entry. Undo deletes the record and releases every
// name the container holds; it is idempotent and needs only the ID.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/slipwayhq/slipway/core"
	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/core/spec"
)

// Name is the implementation name recorded in containers.
const Name = "store"

// Impl returns the built-in register stage.
func Impl() core.Impl {
	return core.Impl{Stage: spec.StageRegister, Name: Name, New: func(ctx context.Context, env core.Env) (any, error) {
		if env.Store == nil {
			return nil, errdefs.Internal(errors.New("register stage needs the engine's store"))
		}
		return &Registrar{store: env.Store}, nil
	}}
}

// Registrar is the built-in register stage.
type Registrar struct {
	store core.Store
}

var _ core.Registrar = (*Registrar)(nil)

// validName is moby's container name pattern.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a requested name (with or without one leading "/") against moby's
// pattern and returns it without the "/".
func ValidateName(name string) (string, error) {
	n := strings.TrimPrefix(name, "/")
	if !validName.MatchString(n) {
		return "", errdefs.InvalidArgument(fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	}
	return n, nil
}

// Reserve reserves rec.Name for rec.ID, or a generated name when rec.Name is empty.
func (r *Registrar) Reserve(ctx context.Context, rec *spec.Record) (string, error) {
	if rec.Name != "" {
		n, err := ValidateName(rec.Name)
		if err != nil {
			return "", err
		}
		if err := r.store.ReserveName(rec.ID, n); err != nil {
			return "", err
		}
		return n, nil
	}
	for i := 0; i < 6; i++ {
		n := RandomName(i)
		err := r.store.ReserveName(rec.ID, n)
		if err == nil {
			return n, nil
		}
		if !errdefs.IsConflict(err) {
			return "", err
		}
	}
	n := rec.ID[:12]
	if err := r.store.ReserveName(rec.ID, n); err != nil {
		return "", err
	}
	return n, nil
}

// Register commits the record.
func (r *Registrar) Register(ctx context.Context, rec *spec.Record) error {
	return r.store.Commit(ctx, rec)
}

// Undo deletes the record of rec.ID and releases its names.
func (r *Registrar) Undo(ctx context.Context, rec *spec.Record) error {
	r.store.ReleaseNames(rec.ID)
	return r.store.Delete(ctx, rec.ID)
}
