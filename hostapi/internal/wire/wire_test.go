package wire

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/moby/moby/api/types/network"

	"github.com/slipwayhq/slipway/core/spec"
)

// reference is hostapi's general codec (hostapi/codec.go): what the generated one must
// agree with.
var reference = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.OmitZeroStructFields(true))

// filler sets every field of a value to random contents: strings with escapes, non-ASCII
// and invalid UTF-8, numbers across their range, nil, empty and full slices and maps, and
// valid values for the types with text forms.
type filler struct {
	r     *rand.Rand
	depth int
}

var strs = []string{"", "a", "tcp", "/bin/sh", "é ü", "\"quoted\" \\ back", "line\nbreak\ttab\r", "\x00\x1f ctl", "<&>", "\u2028", "日本語", "bad\xffutf8", "\xed\xa0\x80", "K", "\U0001F600"}

func (f *filler) fill(v reflect.Value) {
	switch v.Interface().(type) {
	case time.Time:
		v.Set(reflect.ValueOf(time.Unix(f.r.Int64N(4e9), f.r.Int64N(1e9)).UTC()))
		return
	case netip.Addr:
		if f.r.IntN(2) == 0 {
			v.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{10, byte(f.r.IntN(256)), 0, 1})))
		} else {
			v.Set(reflect.ValueOf(netip.MustParseAddr("fd00::1")))
		}
		return
	case network.Port:
		p, _ := network.PortFrom(uint16(f.r.IntN(65535)+1), []network.IPProtocol{"tcp", "udp", "sctp"}[f.r.IntN(3)])
		v.Set(reflect.ValueOf(p))
		return
	case network.HardwareAddr:
		v.Set(reflect.ValueOf(network.HardwareAddr{2, 0x42, 0xac, 0x11, 0, byte(f.r.IntN(256))}))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(f.r.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		n := f.r.Int64() >> (64 - bits)
		if f.r.IntN(3) == 0 {
			n = int64(f.r.IntN(3)) - 1
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits := v.Type().Bits()
		n := f.r.Uint64() >> (64 - bits)
		if f.r.IntN(3) == 0 {
			n = uint64(f.r.IntN(2))
		}
		v.SetUint(n)
	case reflect.String:
		v.SetString(strs[f.r.IntN(len(strs))])
	case reflect.Pointer:
		if f.r.IntN(4) == 0 || f.depth > 8 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		f.depth++
		f.fill(v.Elem())
		f.depth--
	case reflect.Slice:
		switch n := f.r.IntN(4); {
		case n == 0 || f.depth > 8:
		case n == 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			s := reflect.MakeSlice(v.Type(), n, n)
			f.depth++
			for i := range n {
				f.fill(s.Index(i))
			}
			f.depth--
			v.Set(s)
		}
	case reflect.Array:
		for i := range v.Len() {
			f.fill(v.Index(i))
		}
	case reflect.Map:
		switch n := f.r.IntN(4); {
		case n == 0 || f.depth > 8:
		case n == 1:
			v.Set(reflect.MakeMap(v.Type()))
		default:
			m := reflect.MakeMap(v.Type())
			f.depth++
			for range n {
				k, x := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				f.fill(k)
				f.fill(x)
				m.SetMapIndex(k, x)
			}
			f.depth--
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && f.r.IntN(3) > 0 {
				f.fill(v.Field(i))
			}
		}
	}
}

// decodeBoth decodes data with both codecs into fresh values of type T and checks that
// they agree; it returns the generated codec's value.
func decodeBoth[T any](t *testing.T, data []byte) *T {
	t.Helper()
	var want, got T
	if err := jsonv1.Unmarshal(data, &want); err != nil {
		t.Fatalf("encoding/json: %v\n%s", err, data)
	}
	if ok, err := Unmarshal(data, &got); !ok || err != nil {
		t.Fatalf("wire: %v, %v\n%s", ok, err, data)
	}
	if !reflect.DeepEqual(&want, &got) {
		t.Fatalf("decoded values differ\njson: %+v\nwire: %+v\nfrom %s", want, got, data)
	}
	return &got
}

func roundTrip[T any](t *testing.T, v *T) {
	t.Helper()
	ref, err := jsonv2.Marshal(v, reference)
	if err != nil {
		t.Fatal(err)
	}
	mine, ok, err := Marshal(v)
	if !ok || err != nil {
		t.Fatalf("wire: %v, %v", ok, err)
	}
	a := decodeBoth[T](t, ref)
	b := decodeBoth[T](t, mine)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the two encodings decode to different values\nreference: %s\nwire:      %s", ref, mine)
	}
	if len(mine) > len(ref)+len(ref)/10 {
		t.Errorf("wire encoding of %d bytes, reference %d: fields not left out?\n%s\n%s", len(mine), len(ref), mine, ref)
	}
}

// TestMatchesEncodingJSON fills every root type at random and checks that the generated
// codec and the reference codec, each encoding, both decoding, all give the same values.
func TestMatchesEncodingJSON(t *testing.T) {
	f := &filler{r: rand.New(rand.NewPCG(1, 2))}
	for i := range 300 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var rec spec.Record
			f.fill(reflect.ValueOf(&rec).Elem())
			roundTrip(t, &rec)
			var req spec.CreateRequest
			f.fill(reflect.ValueOf(&req).Elem())
			roundTrip(t, &req)
			var n spec.Network
			f.fill(reflect.ValueOf(&n).Elem())
			roundTrip(t, &n)
		})
	}
	roundTrip(t, &spec.Record{})
}

func TestUnknownTypes(t *testing.T) {
	if _, ok, _ := Marshal(map[string]int{}); ok {
		t.Error("Marshal took a type it was not generated for")
	}
	var x struct{ A int }
	if ok, _ := Unmarshal([]byte(`{}`), &x); ok {
		t.Error("Unmarshal took a type it was not generated for")
	}
	if ok, _ := Unmarshal([]byte(`{}`), (*spec.Record)(nil)); ok {
		t.Error("Unmarshal took a nil pointer")
	}
}

// TestDecodeLikeEncodingJSON gives both decoders JSON that the encoder never writes: keys
// in another case, unknown keys, nulls, escapes, white space, duplicates; and malformed
// JSON, which both must refuse.
func TestDecodeLikeEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"id":"x","NAME":"n","Request":{"config":{"image":"a","Env":null,"Cmd":["a","\u00e9\ud83d\ude00","\ud800x"]}}}`,
		`{"ID":"x","ID":"y","Unknown":{"a":[1,2,{"b":null}],"c":"\""},"Created":"2024-01-02T03:04:05.5+02:00"}`,
		` { "Request" : { "HostConfig" : { "PortBindings" : { "80/tcp" : [ { "HostIp" : "127.0.0.1", "HostPort" : "8080" } ] }, "Memory": -1, "CpuShares": 0 } } } `,
		`{"Request":{"HostConfig":{"ConsoleSize":[1,2,3]}}}`,
		`{"Request":{"HostConfig":{"ConsoleSize":[7]}}}`,
		`{"Request":{"Config":{"ExposedPorts":{"53/udp":{},"80":{}}}}}`,
		`{"Network":{"Links":[]},"Merged":null,"Image":{"Layers":[{"size":12,"digest":"sha256:ab","annotations":{"k":"v"}}]}}`,
		`null`,
		`{"Request":{"NetworkingConfig":{"EndpointsConfig":{"n":{"MacAddress":"02:42:ac:11:00:02","IPAMConfig":{"IPv4Address":"10.0.0.2"}}}}}}`,
	} {
		t.Run("", func(t *testing.T) { decodeBoth[spec.Record](t, []byte(in)) })
	}
	for _, in := range []string{
		``, `{`, `{"ID":}`, `{"ID":"x",}`, `{"ID":"x"} x`, `{"ID" "x"}`, `[]`, `{"Request":{"HostConfig":{"Memory":1.5}}}`,
		`{"Request":{"HostConfig":{"Memory":"1"}}}`, `{"ID":"\x01"}`, `{"ID":"\q"}`, `{"Request":{"HostConfig":{"BlkioWeight":70000}}}`,
		`{"ID":tru}`, `{"Unknown":[1,]}`, `{"Unknown":01}`, `{"Created":"yesterday"}`, strings.Repeat(`{"U":`, 20000),
	} {
		var want, got spec.Record
		if jsonv1.Unmarshal([]byte(in), &want) == nil {
			t.Errorf("encoding/json took %.40q", in)
		}
		if _, err := Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("wire took %.40q", in)
		}
	}
}

// FuzzRoundTrip is TestMatchesEncodingJSON with the fuzzer choosing the random records.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := &filler{r: rand.New(rand.NewPCG(a, b))}
		var rec spec.Record
		r.fill(reflect.ValueOf(&rec).Elem())
		roundTrip(t, &rec)
	})
}

// FuzzDecode: whatever encoding/json decodes, the generated decoder decodes to the same
// value.
func FuzzDecode(f *testing.F) {
	r := &filler{r: rand.New(rand.NewPCG(3, 4))}
	for range 20 {
		var rec spec.Record
		r.fill(reflect.ValueOf(&rec).Elem())
		b, _, _ := Marshal(&rec)
		f.Add(b)
	}
	f.Add([]byte(`{"request":{"hostconfig":{"memory":5}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want, got spec.Record
		werr := jsonv1.Unmarshal(data, &want)
		_, err := Unmarshal(data, &got)
		if werr == nil && err != nil {
			t.Fatalf("encoding/json decodes %q, wire: %v", data, err)
		}
		if werr == nil && !reflect.DeepEqual(&want, &got) {
			t.Fatalf("decoded values differ for %q\njson: %+v\nwire: %+v", data, want, got)
		}
	})
}

// benchRecord is the record that plugins/host's BenchmarkCall sends: as the network stage
// sees it in a create with moby's defaults, an image of three layers and the merged config.
const benchRecord = `{"ID":"33792a66bbd8af1690fc285049b58b59e98d87263719803d134d83a73e836093","Name":"bench","Request":{"Name":"bench","Config":{"Env":["A=1","PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/app","-v"],"Image":"example.com/app:1","Labels":{"app":"bench"}},"HostConfig":{"RestartPolicy":{"Name":"no"},"CgroupnsMode":"host","IpcMode":"private","ShmSize":67108864,"Runtime":"runc","OomKillDisable":false},"Warnings":["IPv4 forwarding is disabled. Networking will not work."]},"Image":{"Ref":"example.com/app:1","Name":"example.com/app:1","ID":"sha256:0000000000000000000000000000000000000000000000000000000000000001","Config":{"Env":["A=1"],"Cmd":["/bin/app"]},"Layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000020","size":1234},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000021","size":1234},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000022","size":1234}],"DiffIDs":["sha256:0000000000000000000000000000000000000000000000000000000000000010","sha256:0000000000000000000000000000000000000000000000000000000000000011","sha256:0000000000000000000000000000000000000000000000000000000000000012"]},"Merged":{"Config":{"Env":["A=1","PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/app","-v"],"Image":"example.com/app:1","Labels":{"app":"bench"}},"HostConfig":{"RestartPolicy":{"Name":"no"},"CgroupnsMode":"host","IpcMode":"private","ShmSize":67108864,"Runtime":"runc","OomKillDisable":false},"Path":"/bin/app","Args":["-v"]}}`

// BenchmarkRecord: encoding and decoding a record of 1.8 KB, with this codec and with the
// reference.
func BenchmarkRecord(b *testing.B) {
	var rec spec.Record
	if err := jsonv1.Unmarshal([]byte(benchRecord), &rec); err != nil {
		b.Fatal(err)
	}
	b.Run("encode/wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Marshal(&rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonv2.Marshal(&rec, reference); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r spec.Record
			if _, err := Unmarshal([]byte(benchRecord), &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r spec.Record
			if err := jsonv1.Unmarshal([]byte(benchRecord), &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
