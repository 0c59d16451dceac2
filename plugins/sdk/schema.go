package sdk

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/slipwayhq/slipway/hostapi"
)

// Schema derives the config schema from cfg, a pointer to a config struct (nil: none).
//
// Each exported field is one attribute. Its name is the key the config's JSON carries: the
// name in its `json` tag, else the Go name; `json:"-"` fields are left out. A field is
// required when it has an `hcl` tag without ",optional" (the gohcl convention); a field
// without an `hcl` tag is optional. Its type is an HCL type expression: string (also for types that unmarshal
// from text, such as netip.Prefix), number, bool, list(T), map(T), object (with its fields)
// or any. The `doc` tag is the description; a non-zero value in *cfg is the default.
func Schema(cfg any) []hostapi.Field {
	if cfg == nil {
		return nil
	}
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return fields(v.Type().Elem(), reflect.Value{})
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	return fields(v.Type(), v)
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

func fields(t reflect.Type, v reflect.Value) []hostapi.Field {
	var out []hostapi.Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		jname, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if jname == "-" {
			continue
		}
		name := sf.Name
		if jname != "" {
			name = jname
		}
		required := false
		if h, ok := sf.Tag.Lookup("hcl"); ok {
			_, opts, _ := strings.Cut(h, ",")
			required = !strings.Contains(opts, "optional")
		}
		typ, sub := typeOf(sf.Type)
		f := hostapi.Field{Name: name, Type: typ, Required: required, Description: sf.Tag.Get("doc"), Fields: sub}
		if v.IsValid() {
			if fv := v.Field(i); !fv.IsZero() {
				if b, err := json.Marshal(fv.Interface()); err == nil {
					f.Default = b
				}
			}
		}
		out = append(out, f)
	}
	return out
}

func typeOf(t reflect.Type) (string, []hostapi.Field) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "string", nil
	}
	if t == reflect.TypeFor[json.RawMessage]() || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return "any", nil
	}
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.Slice, reflect.Array:
		et, sub := typeOf(t.Elem())
		return "list(" + et + ")", sub
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return "any", nil
		}
		et, sub := typeOf(t.Elem())
		return "map(" + et + ")", sub
	case reflect.Struct:
		return "object", fields(t, reflect.Value{})
	}
	return "any", nil
}
