package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/slipwayhq/slipway/core/errdefs"
)

// filters are the filters query parameter: key -> set of values.
type filters map[string]map[string]bool

// parseFilters decodes the filters parameter in either encoding clients send:
// {"key":{"value":true}} (docker CLI, moby client) or {"key":["value"]} (older clients).
func parseFilters(s string) (filters, error) {
	f := filters{}
	if s == "" {
		return f, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter: %w", err))
	}
	for k, v := range raw {
		set := map[string]bool{}
		var m map[string]bool
		var l []string
		switch {
		case json.Unmarshal(v, &m) == nil:
			for val, on := range m {
				if on {
					set[val] = true
				}
			}
		case json.Unmarshal(v, &l) == nil:
			for _, val := range l {
				set[val] = true
			}
		default:
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filter: the values of %q must be a list or a set", k))
		}
		f[k] = set
	}
	return f, nil
}

// validate refuses keys outside accepted, with moby's text.
func (f filters) validate(accepted ...string) error {
	for k := range f {
		ok := false
		for _, a := range accepted {
			ok = ok || a == k
		}
		if !ok {
			return errdefs.InvalidArgument(fmt.Errorf("invalid filter '%s'", k))
		}
	}
	return nil
}

func (f filters) has(key string) bool { return len(f[key]) > 0 }

func (f filters) values(key string) []string {
	out := make([]string, 0, len(f[key]))
	for v := range f[key] {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// match is moby's Filters.Match: true when key is not filtered, or when one of its values,
// read as a regular expression, matches source anywhere.
func (f filters) match(key, source string) bool {
	vals := f[key]
	if len(vals) == 0 {
		return true
	}
	for v := range vals {
		if re, err := regexp.Compile(v); err == nil && re.MatchString(source) {
			return true
		}
	}
	return false
}

// exact is true when key is not filtered or source is one of its values.
func (f filters) exact(key, source string) bool {
	vals := f[key]
	return len(vals) == 0 || vals[source]
}

// matchLabels is moby's MatchKVList: every "k" or "k=v" value of key must hold in labels.
func (f filters) matchLabels(key string, labels map[string]string) bool {
	for v := range f[key] {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != want) {
			return false
		}
	}
	return true
}
