// Package errdefs defines the error classes that Slipway errors carry across every boundary:
// the Go API, the plugin gRPC wire, the CLI's exit status and the HTTP status of the Engine
// API.
//
// A class is attached to an error with one of the constructors (InvalidArgument, NotFound,
// Conflict, FailedPrecondition, Unavailable, Canceled, Internal) and read back with ClassOf
// or the IsX helpers, which look through wrapping (%w) and errors.Join. The message of the
// wrapped error is kept unchanged, so moby texts that clients match on survive.
//
// The package depends on the standard library only; the mappings to gRPC codes and HTTP
// statuses live beside the transports that need them.
package errdefs

import (
	"context"
	"errors"
	"fmt"
)

// Class is the kind of failure an error reports.
type Class int

// The error classes. Unknown is the class of an error that carries none.
const (
	Unknown Class = iota
	InvalidArgumentClass
	NotFoundClass
	ConflictClass
	FailedPreconditionClass
	UnavailableClass
	CanceledClass
	InternalClass
)

var classNames = [...]string{
	Unknown:                 "unknown",
	InvalidArgumentClass:    "invalid argument",
	NotFoundClass:           "not found",
	ConflictClass:           "conflict",
	FailedPreconditionClass: "failed precondition",
	UnavailableClass:        "unavailable",
	CanceledClass:           "canceled",
	InternalClass:           "internal",
}

// String returns the class in words, for example "not found".
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return fmt.Sprintf("class(%d)", int(c))
	}
	return classNames[c]
}

// ParseClass is the inverse of Class.String; it returns Unknown for a word it does not know.
func ParseClass(s string) Class {
	for i, n := range classNames {
		if n == s {
			return Class(i)
		}
	}
	return Unknown
}

// classed attaches a class to an error without changing its message.
type classed struct {
	class Class
	err   error
}

func (e *classed) Error() string { return e.err.Error() }
func (e *classed) Unwrap() error { return e.err }

// Class reports the attached class; it lets ClassOf find it through errors.As.
func (e *classed) Class() Class { return e.class }

type classer interface{ Class() Class }

// WithClass returns err marked with class c. A nil err stays nil.
func WithClass(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &classed{class: c, err: err}
}

// Errorf formats an error (with %w support) and marks it with class c.
func Errorf(c Class, format string, args ...any) error {
	return &classed{class: c, err: fmt.Errorf(format, args...)}
}

// InvalidArgument marks err as a request the caller must change.
func InvalidArgument(err error) error { return WithClass(InvalidArgumentClass, err) }

// NotFound marks err as a reference to something that does not exist.
func NotFound(err error) error { return WithClass(NotFoundClass, err) }

// Conflict marks err as a clash with existing state (a name in use, an address taken).
func Conflict(err error) error { return WithClass(ConflictClass, err) }

// FailedPrecondition marks err as a request that the current state does not allow.
func FailedPrecondition(err error) error { return WithClass(FailedPreconditionClass, err) }

// Unavailable marks err as a dependency that cannot be reached now (a dead plugin, a locked
// database); the same request may succeed later.
func Unavailable(err error) error { return WithClass(UnavailableClass, err) }

// Canceled marks err as the result of the caller giving up.
func Canceled(err error) error { return WithClass(CanceledClass, err) }

// Internal marks err as a fault of Slipway or of the host it runs on.
func Internal(err error) error { return WithClass(InternalClass, err) }

// ClassOf returns the class of err: the first class found walking the wrap chain (through
// errors.Join, depth first); context.Canceled is Canceled and context.DeadlineExceeded is
// Unavailable when nothing else is attached. A nil error has class Unknown.
func ClassOf(err error) Class {
	if err == nil {
		return Unknown
	}
	var c classer
	if errors.As(err, &c) {
		return c.Class()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CanceledClass
	case errors.Is(err, context.DeadlineExceeded):
		return UnavailableClass
	}
	return Unknown
}

// IsInvalidArgument reports whether err is of class InvalidArgument.
func IsInvalidArgument(err error) bool { return ClassOf(err) == InvalidArgumentClass }

// IsNotFound reports whether err is of class NotFound.
func IsNotFound(err error) bool { return ClassOf(err) == NotFoundClass }

// IsConflict reports whether err is of class Conflict.
func IsConflict(err error) bool { return ClassOf(err) == ConflictClass }

// IsFailedPrecondition reports whether err is of class FailedPrecondition.
func IsFailedPrecondition(err error) bool { return ClassOf(err) == FailedPreconditionClass }

// IsUnavailable reports whether err is of class Unavailable.
func IsUnavailable(err error) bool { return ClassOf(err) == UnavailableClass }

// IsCanceled reports whether err is of class Canceled.
func IsCanceled(err error) bool { return ClassOf(err) == CanceledClass }

// IsInternal reports whether err is of class Internal, or carries no class at all: an
// unclassified error is a fault until proven otherwise.
func IsInternal(err error) bool {
	c := ClassOf(err)
	return c == InternalClass || (err != nil && c == Unknown)
}
