package sdk_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/hostapi"
	"github.com/slipwayhq/slipway/plugins/sdk"
)

type inner struct {
	Host string `json:"host" hcl:"host"`
	Port int    `json:"port,omitempty" hcl:"port,optional"`
}

type config struct {
	Dir     string            `json:"dir" hcl:"dir" doc:"where the files go"`
	Subnet  netip.Prefix      `json:"subnet" hcl:"subnet,optional"`
	Labels  map[string]string `json:"labels,omitempty"`
	Peers   []inner           `json:"peers,omitempty" hcl:"peer,block"`
	Verbose bool              `json:"verbose" hcl:"verbose,optional"`
	Ratio   float64           `hcl:"ratio,optional"`
	Any     json.RawMessage   `json:"any,omitempty"`
	Skipped string            `json:"-"`
	private int
}

func TestSchema(t *testing.T) {
	got := sdk.Schema(&config{Subnet: netip.MustParsePrefix("10.0.0.0/8"), private: 1})
	b, _ := json.Marshal(got)
	want := `[{"name":"dir","type":"string","required":true,"description":"where the files go"},` +
		`{"name":"subnet","type":"string","required":false,"default":"10.0.0.0/8"},` +
		`{"name":"labels","type":"map(string)","required":false},` +
		`{"name":"peers","type":"list(object)","required":true,"fields":[{"name":"host","type":"string","required":true},{"name":"port","type":"number","required":false}]},` +
		`{"name":"verbose","type":"bool","required":false},` +
		`{"name":"Ratio","type":"number","required":false},` +
		`{"name":"any","type":"any","required":false}]`
	if string(b) != want {
		t.Fatalf("schema:\n%s\nwant\n%s", b, want)
	}
	if sdk.Schema(nil) != nil {
		t.Fatal("schema of no config")
	}
}

func TestDecode(t *testing.T) {
	c := &config{Subnet: netip.MustParsePrefix("10.0.0.0/8")}
	if err := sdk.Decode(c, []byte(`{"dir":"/x","peers":[],"verbose":true}`)); err != nil {
		t.Fatal(err)
	}
	if c.Dir != "/x" || !c.Verbose || c.Subnet.String() != "10.0.0.0/8" {
		t.Fatalf("decoded %+v; the default subnet must stay", c)
	}
	for in, want := range map[string]string{
		`{"peers":[]}`:                    `missing required field "dir"`,
		`{"dir":"/x","peers":[],"odd":1}`: `json: unknown field "odd"`,
		`[1]`:                             `not a JSON object`,
		`{"dir":"/x","peers":[],"subnet":"nonsense"}`: `netip.ParsePrefix`,
	} {
		err := sdk.Decode(&config{}, []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	if err := sdk.Decode(nil, []byte(`{"a":1}`)); err == nil {
		t.Error("a plugin without config accepted one")
	}
	if err := sdk.Decode(nil, nil); err != nil {
		t.Error(err)
	}
}

func TestDescribe(t *testing.T) {
	d := sdk.Describe(sdk.Plugin{Name: "x", Version: "1.2.3", Config: &config{}})
	if d.Name != "x" || d.Version != "1.2.3" || len(d.Stages) != 0 || d.ProtocolVersions[0] != hostapi.ProtocolVersion || len(d.Missing(hostapi.RequiredCapabilities)) != 0 {
		t.Fatalf("%+v", d)
	}
}
