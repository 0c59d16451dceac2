package hostapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/core/errdefs"
	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// CodeOf returns the gRPC code that stands for class c.
func CodeOf(c errdefs.Class) codes.Code {
	switch c {
	case errdefs.InvalidArgumentClass:
		return codes.InvalidArgument
	case errdefs.NotFoundClass:
		return codes.NotFound
	case errdefs.ConflictClass:
		return codes.AlreadyExists
	case errdefs.FailedPreconditionClass:
		return codes.FailedPrecondition
	case errdefs.UnavailableClass:
		return codes.Unavailable
	case errdefs.CanceledClass:
		return codes.Canceled
	}
	return codes.Internal
}

// ClassOfCode is the inverse of CodeOf; codes without a class of their own are Internal.
func ClassOfCode(c codes.Code) errdefs.Class {
	switch c {
	case codes.InvalidArgument:
		return errdefs.InvalidArgumentClass
	case codes.NotFound:
		return errdefs.NotFoundClass
	case codes.AlreadyExists:
		return errdefs.ConflictClass
	case codes.FailedPrecondition:
		return errdefs.FailedPreconditionClass
	case codes.Unavailable, codes.DeadlineExceeded:
		return errdefs.UnavailableClass
	case codes.Canceled:
		return errdefs.CanceledClass
	}
	return errdefs.InternalClass
}

// ToStatus turns a stage's error into the gRPC status error that carries it over the wire:
// the code of its class (Internal for an unclassified error), its message unchanged and an
// ErrorInfo detail. A nil error stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	c := errdefs.ClassOf(err)
	if c == errdefs.Unknown {
		c = errdefs.InternalClass
	}
	st := status.New(CodeOf(c), err.Error())
	if d, derr := st.WithDetails(&pluginpb.ErrorInfo{Class: c.String()}); derr == nil {
		st = d
	}
	return st.Err()
}

// TransportError is a failed call that is not a stage's own error: the plugin process died
// or hung, the connection broke, or the plugin does not serve the method.
type TransportError struct {
	Code    codes.Code
	Message string
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("rpc error: code = %s desc = %s", e.Code, e.Message)
}

// FromStatus turns the error of a call into what the host returns: the stage's error with
// its class and exact message, or a *TransportError. A nil error stays nil; context errors
// of the caller's own context are kept as they are (see Caller).
//
// A status with an ErrorInfo detail is a stage's error. So is one without the detail whose
// code the gRPC transport never produces by itself (InvalidArgument, NotFound,
// AlreadyExists, FailedPrecondition), for plugins written without the SDK.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return &TransportError{Code: codes.Unknown, Message: err.Error()}
	}
	for _, d := range st.Details() {
		if info, ok := d.(*pluginpb.ErrorInfo); ok {
			c := errdefs.ParseClass(info.Class)
			if c == errdefs.Unknown {
				c = ClassOfCode(st.Code())
			}
			return errdefs.WithClass(c, errors.New(st.Message()))
		}
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition:
		return errdefs.WithClass(ClassOfCode(st.Code()), errors.New(st.Message()))
	}
	return &TransportError{Code: st.Code(), Message: st.Message()}
}
