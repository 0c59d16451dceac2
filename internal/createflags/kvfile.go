package createflags

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// readKVFiles reads the KEY=VALUE lines of each file in turn (--env-file, --label-file).
// lookup, when not nil, gives the value of a line holding a bare KEY; a KEY it does not
// know, or any bare KEY when lookup is nil, is left out.
func readKVFiles(files []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		lines, err := parseKVLines(f, lookup)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("invalid env file (%s): %v", name, err)
		}
		out = append(out, lines...)
	}
	return out, nil
}

// parseKVLines parses docker's env-file format: blank lines and lines starting with "#"
// (after leading white space) are skipped, leading white space is dropped, the key may not
// contain white space, and the value is kept as written (no quotes are removed). A UTF-8
// byte-order mark on the first line is ignored.
func parseKVLines(r io.Reader, lookup func(string) (string, bool)) ([]string, error) {
	lines := []string{}
	sc := bufio.NewScanner(r)
	bom := []byte{0xEF, 0xBB, 0xBF}
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("invalid utf8 bytes at line %d: %v", n, b)
		}
		if n == 1 {
			b = bytes.TrimPrefix(b, bom)
		}
		line := strings.TrimLeftFunc(string(b), unicode.IsSpace)
		if line == "" || line[0] == '#' {
			continue
		}
		key, _, hasValue := strings.Cut(line, "=")
		if key == "" {
			return nil, fmt.Errorf("no variable name on line '%s'", line)
		}
		if strings.ContainsAny(key, whiteSpaces) {
			return nil, fmt.Errorf("variable '%s' contains whitespaces", key)
		}
		if hasValue {
			lines = append(lines, line)
			continue
		}
		if lookup != nil {
			if v, ok := lookup(line); ok {
				lines = append(lines, key+"="+v)
			}
		}
	}
	return lines, sc.Err()
}
