// Package wire is the JSON codec of the values that cross a plugin's boundary on every stage
// call: the container record, the create request and the stages' outputs (the types of
// core/spec and the moby and OCI types they hold).
//
// The functions in wire_gen.go are generated from those Go types by ./gen (run
// hostapi/generate.sh; CI checks that the file is current). They write and read JSON with
// encoding/json's semantics for these types, as hostapi's general codec does (see
// hostapi/codec.go): the same field names, the types' own JSON and text methods, every
// struct field left out when it holds its zero value or is empty under omitempty. What they
// leave out is the reflection: a record of 1.8 KB is encoded about four times faster (one
// allocation) and decoded twice as fast (27 allocations, not 43; the decoded strings are cut
// from one copy of the input), which is what most of a plugin call's own work was
// (BenchmarkRecord here, BenchmarkCall in plugins/host).
//
// The JSON is plain JSON: either side may use this codec or any JSON decoder, and an older
// host or plugin reads and writes the same bytes. The decoder accepts what encoding/json
// accepts for these types (object keys are matched exactly, then without regard to case;
// unknown keys are skipped; null leaves a value as it is, or makes a pointer, slice or map
// nil) and refuses malformed JSON. Three differences from encoding/json, where either
// answer is right: map keys are written in the map's order, not sorted; a type error (a
// string where a number belongs) ends the decoding at once instead of at the end; and after
// an error the value may hold what was decoded before it (hostapi throws it away).
// TestMatchesEncodingJSON holds the two codecs to the same values on records filled at
// random, and FuzzDecode on any input that encoding/json decodes.
package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Marshal returns the JSON of v, and false if v's type is not one the codec was generated
// for (the caller then uses a general codec).
func Marshal(v any) ([]byte, bool, error) {
	e := encoder{b: make([]byte, 0, 2048)}
	if !encodeAny(&e, v) {
		return nil, false, nil
	}
	if e.err != nil {
		return nil, true, e.err
	}
	return e.b, true, nil
}

// Unmarshal decodes data into v, and returns false if v's type is not one the codec was
// generated for.
func Unmarshal(data []byte, v any) (bool, error) {
	d := decoder{data: data}
	if !decodeAny(&d, v) {
		return false, nil
	}
	if d.err == nil {
		d.ws()
		if d.pos < len(d.data) {
			d.fail("invalid character %q after top-level value", d.data[d.pos])
		}
	}
	return true, d.err
}

// encoder appends JSON to b; the first error sticks.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *encoder) null() { e.b = append(e.b, "null"...) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, "true"...)
	} else {
		e.b = append(e.b, "false"...)
	}
}

func (e *encoder) int(v int64)   { e.b = strconv.AppendInt(e.b, v, 10) }
func (e *encoder) uint(v uint64) { e.b = strconv.AppendUint(e.b, v, 10) }

const hex = "0123456789abcdef"

// str appends s as a JSON string, as encoding/json does: invalid UTF-8 becomes U+FFFD.
func (e *encoder) str(s string) {
	b := append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	e.b = append(b, '"')
}

// bytes appends a byte slice as encoding/json does: a base64 string.
func (e *encoder) bytes(v []byte) {
	e.b = append(e.b, '"')
	e.b = base64.StdEncoding.AppendEncode(e.b, v)
	e.b = append(e.b, '"')
}

// raw appends the output of a MarshalJSON method, once it is known to be one JSON value.
func (e *encoder) raw(v []byte, err error) {
	if err != nil {
		e.fail(err)
		return
	}
	d := decoder{data: v}
	d.skip()
	if d.err == nil {
		d.ws()
		if d.pos < len(d.data) {
			d.fail("invalid character after value")
		}
	}
	if d.err != nil {
		e.fail(fmt.Errorf("wire: MarshalJSON returned invalid JSON: %w", d.err))
		return
	}
	e.b = append(e.b, v...)
}

// text appends the output of a MarshalText method as a string.
func (e *encoder) text(v []byte, err error) {
	if err != nil {
		e.fail(err)
		return
	}
	e.str(string(v))
}

// decoder reads JSON from data; the first error sticks, and every method does nothing once
// there is one.
type decoder struct {
	data  []byte
	s     string // data as a string, when the strings decoded are cut from it
	pos   int
	depth int
	err   error
}

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

var errEOF = errors.New("unexpected end of JSON input")

// begin readies d for a value of a generated type: the decoded strings are cut from one copy
// of the input, one allocation rather than one per string.
func (d *decoder) begin() { d.s = string(d.data) }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("wire: offset %d: "+format, append([]any{d.pos}, args...)...)
	}
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end or after an error.
func (d *decoder) peek() byte {
	if d.err != nil {
		return 0
	}
	d.ws()
	if d.pos >= len(d.data) {
		d.err = errEOF
		return 0
	}
	return d.data[d.pos]
}

func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return true
	}
	d.fail("invalid literal")
	return false
}

// null consumes a null and reports whether there was one.
func (d *decoder) null() bool {
	if d.peek() == 'n' {
		return d.literal("null")
	}
	return false
}

// open consumes c ('{' or '['), or fails with a type error naming what was expected.
func (d *decoder) open(c byte, what string) bool {
	if d.peek() != c {
		if d.err == nil {
			d.fail("cannot decode %s into %s", d.kind(), what)
		}
		return false
	}
	if d.depth++; d.depth > maxDepth {
		d.fail("exceeded max depth")
		return false
	}
	d.pos++
	return true
}

// kind names the JSON value ahead, for errors.
func (d *decoder) kind() string {
	switch d.peek() {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// more reports whether another member or element follows in the object or array that open
// began (close is '}' or ']'); first is true before the first one. It consumes the comma,
// or the closing bracket at the end.
func (d *decoder) more(close byte, first *bool) bool {
	c := d.peek()
	if d.err != nil {
		return false
	}
	if c == close {
		d.pos++
		d.depth--
		return false
	}
	if *first {
		*first = false
		return true
	}
	if c != ',' {
		d.fail("invalid character %q, want ',' or %q", c, close)
		return false
	}
	d.pos++
	return true
}

// key reads an object's member name and the colon after it.
func (d *decoder) key() []byte {
	if d.peek() != '"' {
		if d.err == nil {
			d.fail("invalid character %q, want an object key", d.data[d.pos])
		}
		return nil
	}
	k := d.strBytes()
	if d.peek() != ':' {
		if d.err == nil {
			d.fail("invalid character %q after object key", d.data[d.pos])
		}
		return nil
	}
	d.pos++
	return k
}

// fold returns the name in names (in the struct's field order) that k matches without
// regard to case, as encoding/json matches a key that matches no name exactly; or nil.
func fold(k []byte, names []string) []byte {
	for _, n := range names {
		if bytes.EqualFold(k, []byte(n)) {
			return []byte(n)
		}
	}
	return nil
}

// strBytes reads a string and returns its unescaped bytes; a string without escapes is
// returned in place.
func (d *decoder) strBytes() []byte {
	if d.peek() != '"' {
		if d.err == nil {
			d.fail("cannot decode %s into a string", d.kind())
		}
		return nil
	}
	d.pos++
	start := d.pos
	for d.pos < len(d.data) && plain[d.data[d.pos]] {
		d.pos++
	}
	switch {
	case d.pos >= len(d.data):
		d.err = errEOF
		return nil
	case d.data[d.pos] == '"':
		d.pos++
		return d.data[start : d.pos-1]
	case d.data[d.pos] < 0x20:
		d.fail("invalid character %q in string literal", d.data[d.pos])
		return nil
	}
	return d.strSlow(start)
}

// plain marks the bytes that stand for themselves in a JSON string: not a quote, backslash
// or control character, and ASCII (a longer UTF-8 sequence is checked).
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strSlow unescapes a string whose first escape or non-ASCII byte is at d.pos; invalid
// UTF-8 becomes U+FFFD, as with encoding/json.
func (d *decoder) strSlow(start int) []byte {
	b := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return b
		case c < 0x20:
			d.fail("invalid character %q in string literal", c)
			return nil
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, d.data[d.pos:d.pos+size]...)
			}
			d.pos += size
		case c != '\\':
			b = append(b, c)
			d.pos++
		default:
			if d.pos+1 >= len(d.data) {
				d.err = errEOF
				return nil
			}
			e := d.data[d.pos+1]
			d.pos += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := d.hex4()
				if r < 0 {
					return nil
				}
				if utf16.IsSurrogate(rune(r)) {
					r2 := -1
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						save := d.pos
						d.pos += 2
						if r2 = d.hex4(); r2 < 0 {
							return nil
						}
						if dec := utf16.DecodeRune(rune(r), rune(r2)); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							continue
						}
						d.pos = save // not a pair: the second escape stands alone
					}
					b = utf8.AppendRune(b, utf8.RuneError)
					continue
				}
				b = utf8.AppendRune(b, rune(r))
			default:
				d.fail("invalid escape sequence \\%c in string literal", e)
				return nil
			}
		}
	}
	d.err = errEOF
	return nil
}

func (d *decoder) hex4() int {
	if len(d.data)-d.pos < 4 {
		d.err = errEOF
		return -1
	}
	r := 0
	for _, c := range d.data[d.pos : d.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			d.fail("invalid escape sequence in string literal")
			return -1
		}
		r = r*16 + int(c)
	}
	d.pos += 4
	return r
}

func (d *decoder) str() string {
	if d.s != "" && d.peek() == '"' {
		// A string without escapes is cut from the copy.
		i := d.pos + 1
		for i < len(d.data) && plain[d.data[i]] {
			i++
		}
		if i < len(d.data) && d.data[i] == '"' {
			s := d.s[d.pos+1 : i]
			d.pos = i + 1
			return s
		}
	}
	b := d.strBytes()
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// bytes reads a base64 string, as encoding/json does for a []byte.
func (d *decoder) bytes() []byte {
	b := d.strBytes()
	if d.err != nil {
		return nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		d.fail("%w", err)
		return nil
	}
	return out[:n]
}

func (d *decoder) bool() bool {
	switch d.peek() {
	case 't':
		return d.literal("true")
	case 'f':
		d.literal("false")
		return false
	}
	if d.err == nil {
		d.fail("cannot decode %s into a bool", d.kind())
	}
	return false
}

// number reads a number and returns its literal.
func (d *decoder) number() []byte {
	c := d.peek()
	if d.err != nil {
		return nil
	}
	if c != '-' && (c < '0' || c > '9') {
		d.fail("cannot decode %s into a number", d.kind())
		return nil
	}
	start := d.pos
	if c == '-' {
		d.pos++
	}
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		d.fail("invalid number")
		return nil
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			d.fail("invalid number")
			return nil
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			d.fail("invalid number")
			return nil
		}
	}
	return d.data[start:d.pos]
}

func (d *decoder) int(bits int) int64 {
	n := d.number()
	if d.err != nil {
		return 0
	}
	v, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		d.fail("cannot decode number %s into an int%d", n, bits)
	}
	return v
}

func (d *decoder) uint(bits int) uint64 {
	n := d.number()
	if d.err != nil {
		return 0
	}
	v, err := strconv.ParseUint(string(n), 10, bits)
	if err != nil {
		d.fail("cannot decode number %s into a uint%d", n, bits)
	}
	return v
}

// raw reads one value and returns its bytes, for an UnmarshalJSON method.
func (d *decoder) raw() []byte {
	d.peek()
	start := d.pos
	d.skip()
	if d.err != nil {
		return nil
	}
	return d.data[start:d.pos]
}

// skip reads one value of any kind and throws it away.
func (d *decoder) skip() {
	switch d.peek() {
	case 0:
	case '{':
		d.open('{', "")
		for first := true; d.more('}', &first); {
			d.key()
			d.skip()
		}
	case '[':
		d.open('[', "")
		for first := true; d.more(']', &first); {
			d.skip()
		}
	case '"':
		d.strBytes()
	case 't':
		d.literal("true")
	case 'f':
		d.literal("false")
	case 'n':
		d.literal("null")
	default:
		d.number()
	}
}
