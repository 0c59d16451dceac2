package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// maxBody bounds a JSON request body (a create body is a few kilobytes).
const maxBody = 16 << 20

// checkJSON is moby's CheckForJSON: a body must come with Content-Type application/json.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("malformed Content-Type header (%s): %w", ct, err))
	}
	if mt != "application/json" {
		return errdefs.InvalidArgument(fmt.Errorf("unsupported Content-Type header (%s): must be 'application/json'", ct))
	}
	return nil
}

// readBody reads a JSON request body of at most maxBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read request body: %w", err))
	}
	if len(data) > maxBody {
		return nil, errdefs.InvalidArgument(fmt.Errorf("request body larger than %d bytes", maxBody))
	}
	return data, nil
}

// decodeCreate decodes the body of POST /containers/create as moby does: unknown keys and
// nulls are ignored, trailing content is an error, and a plain string is accepted where moby's
// StrSlice accepted one (Cmd, Entrypoint, Shell, HostConfig.CapAdd, HostConfig.CapDrop).
func decodeCreate(body io.Reader) (*container.CreateRequest, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read request body: %w", err))
	}
	if len(data) > maxBody {
		return nil, errdefs.InvalidArgument(fmt.Errorf("request body larger than %d bytes", maxBody))
	}
	var req container.CreateRequest
	// The decoder of encoding/json/v2 (here its mirror, go-json-experiment) with
	// encoding/json's semantics takes half the time of encoding/json's (25 against 50 µs
	// for the docker CLI's body). A body it refuses is decoded again by encoding/json, whose
	// error texts are moby's, and whose errors lead to the string-or-list retry below.
	if jsonv1.Unmarshal(data, &req) == nil {
		return &req, nil
	}
	req = container.CreateRequest{}
	err = decodeOne(data, &req)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Value == "string" {
		// The fast path failed on a string where a list is expected: retry with the
		// string-or-list fields rewritten to lists.
		if fixed, ok := fixStrSlices(data); ok {
			var again container.CreateRequest
			if decodeOne(fixed, &again) == nil {
				return &again, nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return &req, nil
}

// decodeOne decodes exactly one JSON value from data, with moby's error texts.
func decodeOne(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return errdefs.InvalidArgument(errors.New("invalid JSON: got EOF while reading request body"))
		}
		return errdefs.InvalidArgument(fmt.Errorf("invalid JSON: %w", err))
	}
	if dec.More() {
		return errdefs.InvalidArgument(errors.New("unexpected content after JSON"))
	}
	return nil
}

// strSliceKeys are the fields that moby's StrSlice decoded from a string or a list, at the
// top level (Config) and in HostConfig. encoding/json matches keys case-insensitively, so
// these are compared that way too.
var (
	configStrSlices = []string{"Cmd", "Entrypoint", "Shell"}
	hostStrSlices   = []string{"CapAdd", "CapDrop"}
)

// fixStrSlices rewrites string values of the string-or-list fields to one-element lists. It
// reports false when data is not an object or nothing changed.
func fixStrSlices(data []byte) ([]byte, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil, false
	}
	changed := wrapStrings(top, configStrSlices)
	for k, v := range top {
		if !strings.EqualFold(k, "HostConfig") {
			continue
		}
		var hc map[string]json.RawMessage
		if json.Unmarshal(v, &hc) != nil || hc == nil {
			continue
		}
		if wrapStrings(hc, hostStrSlices) {
			b, err := json.Marshal(hc)
			if err != nil {
				return nil, false
			}
			top[k] = b
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	b, err := json.Marshal(top)
	return b, err == nil
}

func wrapStrings(m map[string]json.RawMessage, keys []string) bool {
	changed := false
	for k, v := range m {
		for _, want := range keys {
			if !strings.EqualFold(k, want) {
				continue
			}
			v = bytes.TrimSpace(v)
			if len(v) > 0 && v[0] == '"' {
				m[k] = append(append([]byte{'['}, v...), ']')
				changed = true
			}
		}
	}
	return changed
}
