package hostapi

import (
	"encoding/json"

	"github.com/slipwayhq/slipway/hostapi/pluginpb"
)

// Description is what a plugin serves: the JSON that `PLUGIN describe` prints, and the
// Describe RPC's answer.
type Description struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Stages are the stage names served, plus "check" for a check step.
	Stages []string `json:"stages"`
	// ProtocolVersions are the go-plugin protocol versions the plugin speaks; over the
	// Describe RPC, only the one negotiated.
	ProtocolVersions []int    `json:"protocol_versions"`
	Capabilities     []string `json:"capabilities"`
	ConfigSchema     []Field  `json:"config_schema"`
	SDKVersion       string   `json:"sdk_version,omitempty"`
}

// Field is one field of a plugin's config schema.
type Field struct {
	Name string `json:"name"`
	// Type is an HCL type expression: string, number, bool, list(T), map(T), object, any.
	Type        string          `json:"type"`
	Required    bool            `json:"required"`
	Description string          `json:"description,omitempty"`
	Default     json.RawMessage `json:"default,omitempty"`
	// Fields are the fields of an object, or of the elements of a list or map of objects.
	Fields []Field `json:"fields,omitempty"`
}

// Proto returns d as the Describe RPC's answer for the negotiated protocol version.
func (d Description) Proto(protocol int) *pluginpb.DescribeResponse {
	return &pluginpb.DescribeResponse{
		Name: d.Name, Version: d.Version, Stages: d.Stages, ProtocolVersion: int32(protocol),
		Capabilities: d.Capabilities, ConfigSchema: fieldsProto(d.ConfigSchema), SdkVersion: d.SDKVersion,
	}
}

// DescriptionOf is the inverse of Description.Proto.
func DescriptionOf(r *pluginpb.DescribeResponse) Description {
	return Description{
		Name: r.GetName(), Version: r.GetVersion(), Stages: r.GetStages(), ProtocolVersions: []int{int(r.GetProtocolVersion())},
		Capabilities: r.GetCapabilities(), ConfigSchema: fieldsOf(r.GetConfigSchema()), SDKVersion: r.GetSdkVersion(),
	}
}

func fieldsProto(fs []Field) []*pluginpb.ConfigField {
	var out []*pluginpb.ConfigField
	for _, f := range fs {
		out = append(out, &pluginpb.ConfigField{Name: f.Name, Type: f.Type, Required: f.Required, Description: f.Description,
			Default: f.Default, Fields: fieldsProto(f.Fields)})
	}
	return out
}

func fieldsOf(fs []*pluginpb.ConfigField) []Field {
	var out []Field
	for _, f := range fs {
		out = append(out, Field{Name: f.GetName(), Type: f.GetType(), Required: f.GetRequired(), Description: f.GetDescription(),
			Default: f.GetDefault(), Fields: fieldsOf(f.GetFields())})
	}
	return out
}

// Serves reports whether d lists stage (a stage name or "check").
func (d Description) Serves(stage string) bool {
	for _, s := range d.Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// Missing returns the capabilities in want that d lacks.
func (d Description) Missing(want []string) []string {
	have := map[string]bool{}
	for _, c := range d.Capabilities {
		have[c] = true
	}
	var out []string
	for _, c := range want {
		if !have[c] {
			out = append(out, c)
		}
	}
	return out
}
