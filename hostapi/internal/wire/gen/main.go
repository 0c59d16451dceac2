// Command gen writes hostapi/internal/wire/wire_gen.go: a JSON encoder and decoder for each
// Go type reachable from the values that cross a plugin's boundary (the roots below), with
// encoding/json's rules for field names, embedded structs, omitempty and the types' JSON and
// text methods, and every zero-valued field left out as hostapi's codec does. It fails,
// naming the type, on a kind the codec does not handle, so that a change in moby's or OCI's
// types is noticed when the file is regenerated.
//
//	go run ./hostapi/internal/wire/gen -o hostapi/internal/wire/wire_gen.go
package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/core/spec"
)

// roots are the types that Marshal and Unmarshal accept (as pointers).
var roots = []reflect.Type{
	reflect.TypeFor[spec.Record](),
	reflect.TypeFor[spec.CreateRequest](),
	reflect.TypeFor[spec.Verified](),
	reflect.TypeFor[spec.Image](),
	reflect.TypeFor[spec.Merged](),
	reflect.TypeFor[spec.Security](),
	reflect.TypeFor[spec.RootFS](),
	reflect.TypeFor[spec.Dirs](),
	reflect.TypeFor[spec.Network](),
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func main() {
	out := flag.String("o", "wire_gen.go", "output file")
	flag.Parse()
	g := &gen{alias: map[string]string{}, id: map[reflect.Type]string{}}
	for _, t := range roots {
		g.need(t)
	}
	for len(g.queue) > 0 {
		t := g.queue[0]
		g.queue = g.queue[1:]
		g.encoder(t)
		g.decoder(t)
	}
	g.entries()
	src := g.file()
	fmted, err := format.Source(src)
	if err != nil {
		os.WriteFile(*out, src, 0o644)
		log.Fatalf("gofmt: %v", err)
	}
	if err := os.WriteFile(*out, fmted, 0o644); err != nil {
		log.Fatal(err)
	}
}

type gen struct {
	alias   map[string]string // import path to name
	paths   []string
	id      map[reflect.Type]string
	queue   []reflect.Type
	body    bytes.Buffer
	strconv bool // the code calls strconv
	entryFn bytes.Buffer
	extra   bytes.Buffer
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.body, format+"\n", args...) }

// x writes to the declarations that follow the functions.
func (g *gen) x(format string, args ...any) { fmt.Fprintf(&g.extra, format+"\n", args...) }

func fail(t reflect.Type, format string, args ...any) {
	log.Fatalf("gen: %v: %s", t, fmt.Sprintf(format, args...))
}

// need queues t for code generation and returns its function suffix.
func (g *gen) need(t reflect.Type) string {
	if id, ok := g.id[t]; ok {
		return id
	}
	id := g.ident(t)
	g.id[t] = id
	g.queue = append(g.queue, t)
	return id
}

// ident names t for function names.
func (g *gen) ident(t reflect.Type) string {
	if t.Name() != "" {
		if t.PkgPath() == "" {
			return t.Name()
		}
		return g.pkg(t.PkgPath()) + "_" + t.Name()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "ptr_" + g.ident(t.Elem())
	case reflect.Slice:
		return "slice_" + g.ident(t.Elem())
	case reflect.Array:
		return fmt.Sprintf("array%d_%s", t.Len(), g.ident(t.Elem()))
	case reflect.Map:
		return "map_" + g.ident(t.Key()) + "_" + g.ident(t.Elem())
	case reflect.Struct:
		if t.NumField() == 0 {
			return "empty"
		}
	}
	fail(t, "unnamed type of kind %v", t.Kind())
	return ""
}

func (g *gen) pkg(path string) string {
	if a, ok := g.alias[path]; ok {
		return a
	}
	base := path[strings.LastIndex(path, "/")+1:]
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, base)
	a := base
	for i := 2; g.taken(a); i++ {
		a = fmt.Sprintf("%s%d", base, i)
	}
	g.alias[path] = a
	g.paths = append(g.paths, path)
	return a
}

func (g *gen) taken(a string) bool {
	for _, v := range g.alias {
		if v == a {
			return true
		}
	}
	// The package's own imports, and the names of the generated code's variables.
	return slices.Contains([]string{"wire", "strconv", "b", "buf", "c", "d", "e", "err", "first", "i", "k", "kb", "n", "s", "v", "x"}, a)
}

// typ is t in Go syntax.
func (g *gen) typ(t reflect.Type) string {
	if t.Name() != "" {
		if t.PkgPath() == "" {
			return t.Name()
		}
		return g.pkg(t.PkgPath()) + "." + t.Name()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + g.typ(t.Elem())
	case reflect.Slice:
		return "[]" + g.typ(t.Elem())
	case reflect.Array:
		return fmt.Sprintf("[%d]%s", t.Len(), g.typ(t.Elem()))
	case reflect.Map:
		return "map[" + g.typ(t.Key()) + "]" + g.typ(t.Elem())
	case reflect.Struct:
		if t.NumField() == 0 {
			return "struct{}"
		}
	}
	fail(t, "unnamed type of kind %v", t.Kind())
	return ""
}

// implements reports whether *t has the method set of iface, and whether t itself does.
func implements(t, iface reflect.Type) (ptr, val bool) {
	return reflect.PointerTo(t).Implements(iface), t.Implements(iface)
}

// field is one JSON member of a struct, after encoding/json's rules for embedded structs.
type field struct {
	name      string
	path      string // Go selector from the struct value
	typ       reflect.Type
	omitEmpty bool
	omitZero  bool
	tagged    bool
	depth     int
	index     []int
}

func jsonFields(t reflect.Type) []field {
	var all []field
	var walk func(t reflect.Type, path string, depth int, index []int)
	walk = func(t reflect.Type, path string, depth int, index []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ix := append(slices.Clone(index), i)
			if sf.Anonymous {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					fail(t, "embedded pointer %s", sf.Name)
				}
				if !sf.IsExported() && ft.Kind() != reflect.Struct {
					continue
				}
				if name == "" && ft.Kind() == reflect.Struct {
					if p, v := implements(ft, jsonMarshaler); p || v {
						fail(t, "embedded %s with a MarshalJSON method", sf.Name)
					}
					if p, v := implements(ft, textMarshaler); p || v {
						fail(t, "embedded %s with a MarshalText method", sf.Name)
					}
					walk(ft, path+"."+sf.Name, depth+1, ix)
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			for _, o := range strings.Split(opts, ",") {
				switch o {
				case "", "omitempty", "omitzero":
				default:
					fail(t, "field %s: tag option %q", sf.Name, o)
				}
			}
			f := field{name: name, path: path + "." + sf.Name, typ: sf.Type, tagged: name != "", depth: depth, index: ix,
				omitEmpty: strings.Contains(","+opts+",", ",omitempty,"), omitZero: strings.Contains(","+opts+",", ",omitzero,")}
			if f.name == "" {
				f.name = sf.Name
			}
			all = append(all, f)
		}
	}
	walk(t, "", 0, nil)
	// encoding/json: of the fields with one name, the shallowest wins, a tagged one if
	// several are equally shallow; if that leaves more than one, none.
	byName := map[string][]field{}
	for _, f := range all {
		byName[f.name] = append(byName[f.name], f)
	}
	var out []field
	for _, f := range all {
		fs := byName[f.name]
		if fs == nil {
			continue
		}
		delete(byName, f.name)
		minDepth := fs[0].depth
		for _, x := range fs {
			minDepth = min(minDepth, x.depth)
		}
		var cand []field
		for _, x := range fs {
			if x.depth == minDepth {
				cand = append(cand, x)
			}
		}
		if len(cand) > 1 {
			var tagged []field
			for _, x := range cand {
				if x.tagged {
					tagged = append(tagged, x)
				}
			}
			cand = tagged
		}
		if len(cand) == 1 {
			out = append(out, cand[0])
		}
	}
	slices.SortStableFunc(out, func(a, b field) int { return slices.Compare(a.index, b.index) })
	return out
}

// zero is a Go expression that holds when the struct field x (of type t) is zero, as
// OmitZeroStructFields (omitzero) sees it: by the type's IsZero method if it has one (a nil
// pointer is zero too), else when it is the zero Go value.
func (g *gen) zero(t reflect.Type, x string) string {
	switch {
	case t.Kind() == reflect.Pointer && hasIsZero(t):
		return x + " == nil || " + x + ".IsZero()"
	case hasIsZero(t):
		return x + ".IsZero()"
	case hasIsZero(reflect.PointerTo(t)):
		return "(&" + x + ").IsZero()"
	}
	return g.goZero(t, x)
}

// hasIsZero reports whether t has the method IsZero() bool.
func hasIsZero(t reflect.Type) bool {
	m, ok := t.MethodByName("IsZero")
	return ok && m.Type.NumIn() == 1 && m.Type.NumOut() == 1 && m.Type.Out(0).Kind() == reflect.Bool
}

// goZero is a Go expression that holds when x is the zero value of its type t, as
// reflect.Value.IsZero sees it (no methods).
func (g *gen) goZero(t reflect.Type, x string) string {
	switch t.Kind() {
	case reflect.Bool:
		return "!" + x
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return x + " == 0"
	case reflect.String:
		return x + ` == ""`
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return x + " == nil"
	case reflect.Array, reflect.Struct:
		if t.Comparable() {
			return x + " == (" + g.typ(t) + "{})"
		}
		if t.Kind() == reflect.Array {
			fail(t, "array of a type that is not comparable")
		}
		return "isZero_" + g.need(t) + "(&" + x + ")"
	}
	fail(t, "no zero test")
	return ""
}

// empty is the omitempty test of encoding/json.
func (g *gen) empty(t reflect.Type, x string) string {
	switch t.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return "len(" + x + ") == 0"
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return g.zero(t, x)
	}
	return "false"
}

func (g *gen) encoder(t reflect.Type) {
	id := g.id[t]
	T := g.typ(t)
	g.p("func enc_%s(e *encoder, v *%s) {", id, T)
	defer g.p("}\n")
	// A pointer is null when nil and its target otherwise, whose methods do the rest.
	if p, val := implements(t, jsonMarshaler); (p || val) && t.Kind() != reflect.Pointer {
		g.p("e.raw(v.MarshalJSON())")
		return
	}
	if p, val := implements(t, textMarshaler); (p || val) && t.Kind() != reflect.Pointer {
		g.p("e.text(v.MarshalText())")
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		g.p("e.bool(bool(*v))")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		g.p("e.int(int64(*v))")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		g.p("e.uint(uint64(*v))")
	case reflect.String:
		g.p("e.str(string(*v))")
	case reflect.Pointer:
		g.p("if *v == nil { e.null(); return }")
		g.p("enc_%s(e, *v)", g.need(t.Elem()))
	case reflect.Slice:
		g.p("if *v == nil { e.null(); return }")
		if t.Elem().Kind() == reflect.Uint8 {
			if p, val := implements(t.Elem(), jsonMarshaler); !p && !val {
				if p, val := implements(t.Elem(), textMarshaler); !p && !val {
					g.p("e.bytes([]byte(*v))")
					return
				}
			}
		}
		g.p("e.b = append(e.b, '[')")
		g.p("for i := range *v {")
		g.p("if i > 0 { e.b = append(e.b, ',') }")
		g.p("enc_%s(e, &(*v)[i])", g.need(t.Elem()))
		g.p("}")
		g.p("e.b = append(e.b, ']')")
	case reflect.Array:
		g.p("e.b = append(e.b, '[')")
		g.p("for i := range *v {")
		g.p("if i > 0 { e.b = append(e.b, ',') }")
		g.p("enc_%s(e, &(*v)[i])", g.need(t.Elem()))
		g.p("}")
		g.p("e.b = append(e.b, ']')")
	case reflect.Map:
		g.p("if *v == nil { e.null(); return }")
		if p, _ := implements(t.Elem(), jsonMarshaler); p {
			if _, val := implements(t.Elem(), jsonMarshaler); !val {
				fail(t, "map value with a pointer MarshalJSON")
			}
		}
		g.p("e.b = append(e.b, '{')")
		g.p("first := true")
		g.p("for k, x := range *v {")
		g.p("if !first { e.b = append(e.b, ',') }")
		g.p("first = false")
		g.mapKeyEncode(t)
		g.p("e.b = append(e.b, ':')")
		g.p("enc_%s(e, &x)", g.need(t.Elem()))
		g.p("}")
		g.p("e.b = append(e.b, '}')")
	case reflect.Struct:
		fs := jsonFields(t)
		if len(fs) == 0 {
			g.p("e.b = append(e.b, \"{}\"...)")
			return
		}
		g.p("e.b = append(e.b, '{')")
		g.p("n := len(e.b)")
		for _, f := range fs {
			x := "v" + f.path
			z := g.zero(f.typ, x)
			cond := "!(" + z + ")"
			if e := g.empty(f.typ, x); f.omitEmpty && e != z {
				cond += " && !(" + e + ")"
			}
			g.p("if %s {", cond)
			g.p("if len(e.b) > n { e.b = append(e.b, ',') }")
			var q bytes.Buffer
			json.NewEncoder(&q).Encode(f.name)
			g.p("e.b = append(e.b, %q...)", strings.TrimSpace(q.String())+":")
			g.p("enc_%s(e, &%s)", g.need(f.typ), x)
			g.p("}")
		}
		g.p("e.b = append(e.b, '}')")
		// Its zero test, for a struct that holds slices or maps.
		if !t.Comparable() {
			func() {
				p := g.x
				p("// isZero_%s reports whether *v is the zero value.", id)
				p("func isZero_%s(v *%s) bool {", id, T)
				var conds []string
				for i := 0; i < t.NumField(); i++ {
					sf := t.Field(i)
					if sf.Name == "_" {
						continue
					}
					conds = append(conds, "("+g.goZero(sf.Type, "v."+sf.Name)+")")
				}
				if len(conds) == 0 {
					conds = []string{"true"}
				}
				p("return %s", strings.Join(conds, " &&\n"))
				p("}\n")
			}()
		}
	default:
		fail(t, "cannot encode kind %v", t.Kind())
	}
}

// mapKeyEncode writes the key k of a map of type t, as encoding/json does: a string kind as
// it is, else its MarshalText, else an integer in quotes.
func (g *gen) mapKeyEncode(t reflect.Type) {
	k := t.Key()
	switch {
	case k.Kind() == reflect.String:
		g.p("e.str(string(k))")
	case func() bool { p, v := implements(k, textMarshaler); return v || p }():
		if _, v := implements(k, textMarshaler); !v {
			fail(t, "map key with a pointer MarshalText")
		}
		g.p("e.text(k.MarshalText())")
	case k.Kind() >= reflect.Int && k.Kind() <= reflect.Int64:
		g.p(`e.b = append(e.b, '"'); e.int(int64(k)); e.b = append(e.b, '"')`)
	case k.Kind() >= reflect.Uint && k.Kind() <= reflect.Uintptr:
		g.p(`e.b = append(e.b, '"'); e.uint(uint64(k)); e.b = append(e.b, '"')`)
	default:
		fail(t, "map key kind %v", k.Kind())
	}
}

func (g *gen) decoder(t reflect.Type) {
	id := g.id[t]
	T := g.typ(t)
	g.p("func dec_%s(d *decoder, v *%s) {", id, T)
	defer g.p("}\n")
	// A pointer is made nil by null and otherwise gets a target, whose methods do the rest.
	if p, val := implements(t, jsonUnmarshaler); (p || val) && t.Kind() != reflect.Pointer {
		g.p("if r := d.raw(); d.err == nil { if err := v.UnmarshalJSON(r); err != nil { d.fail(\"%%w\", err) } }")
		return
	}
	if p, _ := implements(t, textUnmarshaler); p && t.Kind() != reflect.Pointer {
		g.p("if d.null() { return }")
		g.p("if b := d.strBytes(); d.err == nil { if err := v.UnmarshalText(b); err != nil { d.fail(\"%%w\", err) } }")
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		g.p("if d.null() { return }")
		g.p("*v = %s(d.bool())", T)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		g.p("if d.null() { return }")
		g.p("*v = %s(d.int(%d))", T, t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		g.p("if d.null() { return }")
		g.p("*v = %s(d.uint(%d))", T, t.Bits())
	case reflect.String:
		g.p("if d.null() { return }")
		g.p("*v = %s(d.str())", T)
	case reflect.Pointer:
		g.p("if d.null() { *v = nil; return }")
		g.p("if *v == nil { *v = new(%s) }", g.typ(t.Elem()))
		g.p("dec_%s(d, *v)", g.need(t.Elem()))
	case reflect.Slice:
		g.p("if d.null() { *v = nil; return }")
		if t.Elem().Kind() == reflect.Uint8 {
			if p, val := implements(t.Elem(), jsonUnmarshaler); !p && !val {
				if p, val := implements(t.Elem(), textUnmarshaler); !p && !val {
					g.p("if b := d.bytes(); d.err == nil { *v = %s(b) }", T)
					return
				}
			}
		}
		// The first elements are decoded into an array on the stack, so that a short
		// slice is allocated once, at its length.
		n := max(1, min(16, 512/max(1, int(t.Elem().Size()))))
		E := g.typ(t.Elem())
		g.p("if !d.open('[', %q) { return }", "a "+T)
		g.p("var buf [%d]%s", n, E)
		g.p("var s %s", T)
		g.p("n := 0")
		g.p("for first := true; d.more(']', &first); {")
		g.p("if s == nil && n < len(buf) { dec_%s(d, &buf[n]); n++; continue }", g.need(t.Elem()))
		g.p("if s == nil { s = make(%s, n, 2*n); copy(s, buf[:n]) }", T)
		g.p("var x %s", E)
		g.p("dec_%s(d, &x)", g.need(t.Elem()))
		g.p("s = append(s, x)")
		g.p("}")
		g.p("if s == nil { s = make(%s, n); copy(s, buf[:n]) }", T)
		g.p("*v = s")
	case reflect.Array:
		g.p("if d.null() { return }")
		g.p("if !d.open('[', %q) { return }", "a "+T)
		g.p("i := 0")
		g.p("for first := true; d.more(']', &first); i++ {")
		g.p("if i < len(*v) { dec_%s(d, &(*v)[i]) } else { d.skip() }", g.need(t.Elem()))
		g.p("}")
		g.p("for ; i < len(*v); i++ { (*v)[i] = *new(%s) }", g.typ(t.Elem()))
	case reflect.Map:
		g.p("if d.null() { *v = nil; return }")
		g.p("if !d.open('{', %q) { return }", "a "+T)
		g.p("if *v == nil { *v = %s{} }", T)
		g.p("for first := true; d.more('}', &first); {")
		g.p("kb := d.key()")
		g.p("if d.err != nil { return }")
		g.mapKeyDecode(t)
		g.p("var x %s", g.typ(t.Elem()))
		g.p("dec_%s(d, &x)", g.need(t.Elem()))
		g.p("(*v)[k] = x")
		g.p("}")
	case reflect.Struct:
		fs := jsonFields(t)
		g.p("if d.null() { return }")
		g.p("if !d.open('{', %q) { return }", "a "+T)
		g.p("for first := true; d.more('}', &first); {")
		g.p("k := d.key()")
		if len(fs) == 0 {
			g.p("_ = k")
			g.p("d.skip()")
			g.p("}")
			return
		}
		g.p("again:")
		g.p("switch string(k) {")
		var names []string
		for _, f := range fs {
			names = append(names, f.name)
			g.p("case %q:", f.name)
			g.p("dec_%s(d, &v%s)", g.need(f.typ), f.path)
		}
		g.p("default:")
		g.p("if d.err == nil { if c := fold(k, names_%s); c != nil { k = c; goto again } }", id)
		g.p("d.skip()")
		g.p("}")
		g.p("}")
		g.x("var names_%s = %#v\n", id, names)
	default:
		fail(t, "cannot decode kind %v", t.Kind())
	}
}

func (g *gen) mapKeyDecode(t reflect.Type) {
	k := t.Key()
	K := g.typ(k)
	switch {
	case func() bool { p, _ := implements(k, textUnmarshaler); return p }():
		g.p("var k %s", K)
		g.p("if err := k.UnmarshalText(kb); err != nil { d.fail(\"%%w\", err); return }")
	case k.Kind() == reflect.String:
		g.p("k := %s(kb)", K)
	case k.Kind() >= reflect.Int && k.Kind() <= reflect.Int64:
		g.strconv = true
		g.p("n, err := strconv.ParseInt(string(kb), 10, %d)", k.Bits())
		g.p("if err != nil { d.fail(\"map key %%q: %%w\", kb, err); return }")
		g.p("k := %s(n)", K)
	case k.Kind() >= reflect.Uint && k.Kind() <= reflect.Uintptr:
		g.strconv = true
		g.p("n, err := strconv.ParseUint(string(kb), 10, %d)", k.Bits())
		g.p("if err != nil { d.fail(\"map key %%q: %%w\", kb, err); return }")
		g.p("k := %s(n)", K)
	default:
		fail(t, "map key kind %v", k.Kind())
	}
}

// entries writes encodeAny and decodeAny: a type switch over the roots.
func (g *gen) entries() {
	w := &g.entryFn
	fmt.Fprintf(w, "func encodeAny(e *encoder, v any) bool {\nswitch v := v.(type) {\n")
	for _, t := range roots {
		fmt.Fprintf(w, "case *%s:\nif v == nil { e.null() } else { enc_%s(e, v) }\n", g.typ(t), g.id[t])
	}
	fmt.Fprintf(w, "default:\nreturn false\n}\nreturn true\n}\n\n")
	fmt.Fprintf(w, "func decodeAny(d *decoder, v any) bool {\nswitch v := v.(type) {\n")
	for _, t := range roots {
		fmt.Fprintf(w, "case *%s:\nif v == nil { return false }\nd.begin()\ndec_%s(d, v)\n", g.typ(t), g.id[t])
	}
	fmt.Fprintf(w, "default:\nreturn false\n}\nreturn true\n}\n\n")
}

func (g *gen) file() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by hostapi/internal/wire/gen; DO NOT EDIT.\n\npackage wire\n\nimport (\n")
	if g.strconv {
		fmt.Fprintf(&b, "\"strconv\"\n\n")
	}
	paths := slices.Clone(g.paths)
	slices.Sort(paths)
	for _, p := range paths {
		fmt.Fprintf(&b, "%s %q\n", g.alias[p], p)
	}
	fmt.Fprintf(&b, ")\n\n")
	b.Write(g.entryFn.Bytes())
	b.Write(g.body.Bytes())
	b.Write(g.extra.Bytes())
	return b.Bytes()
}
