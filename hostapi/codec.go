package hostapi

import (
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/slipwayhq/slipway/hostapi/internal/wire"
)

// Records, requests and stage outputs cross the wire as the JSON of their Go types, with
// encoding/json's (v1) semantics but without the struct fields that hold their zero value:
// a record's moby types have about 150 fields, most of them empty, and leaving them out
// makes a typical record 2.6 times smaller (4.6 KB to 1.8 KB). Decoding into a fresh value
// gives the same value either way, since an absent field keeps its zero value, so either
// side may be older and send or expect every field.
//
// The types of core/spec (the record, the request, the stages' outputs) go through the
// codec generated for them in internal/wire: the same JSON, without reflection, about four
// times faster to encode and twice as fast to decode, which is most of what a plugin call
// costs beyond the round trip (see plugins/host's BenchmarkCall). Any other value goes
// through github.com/go-json-experiment/json, the mirror of the standard library's
// encoding/json/v2, with its v1 options.

var wireOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.OmitZeroStructFields(true))

// marshalWire encodes v for the wire.
func marshalWire(v any) ([]byte, error) {
	if b, ok, err := wire.Marshal(v); ok {
		return b, err
	}
	return jsonv2.Marshal(v, wireOptions)
}

// unmarshalWire decodes what marshalWire (or encoding/json) encoded.
func unmarshalWire(b []byte, v any) error {
	if ok, err := wire.Unmarshal(b, v); ok {
		return err
	}
	return jsonv1.Unmarshal(b, v)
}
