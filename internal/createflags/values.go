package createflags

import (
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// The flag values below implement pflag.Value. Their Type names are the ones the docker
// CLI prints in its help ("list", "map", "bytes", ...), and a Set error is reported by
// pflag as `invalid argument "V" for "--flag" flag: ERR`, exactly as docker reports it.

// listValue is a repeatable flag; each value may be checked (and rewritten) by check.
type listValue struct {
	values []string
	check  func(string) (string, error)
}

func (l *listValue) Set(v string) error {
	if l.check != nil {
		c, err := l.check(v)
		if err != nil {
			return err
		}
		v = c
	}
	l.values = append(l.values, v)
	return nil
}

func (l *listValue) String() string {
	if len(l.values) == 0 {
		return ""
	}
	return fmt.Sprintf("%v", l.values)
}

func (l *listValue) Type() string { return "list" }

// orEmpty returns the values, or an empty (non-nil) slice when there are none; the CLI sends
// [] rather than null for the DNS fields.
func (l *listValue) orEmpty() []string {
	if l.values == nil {
		return []string{}
	}
	return l.values
}

// has reports whether v was given.
func (l *listValue) has(v string) bool {
	for _, x := range l.values {
		if x == v {
			return true
		}
	}
	return false
}

// mapValue is a repeatable key=value flag; a later key replaces an earlier one.
type mapValue struct {
	values map[string]string
	check  func(string) (string, error)
}

func (m *mapValue) Set(v string) error {
	if m.check != nil {
		c, err := m.check(v)
		if err != nil {
			return err
		}
		v = c
	}
	k, val, _ := strings.Cut(v, "=")
	m.values[k] = val
	return nil
}

func (m *mapValue) String() string { return fmt.Sprintf("%v", m.values) }
func (m *mapValue) Type() string   { return "map" }

// memBytes is a size such as "64m", parsed with go-units RAMInBytes.
type memBytes int64

func (m *memBytes) Set(v string) error {
	n, err := units.RAMInBytes(v)
	*m = memBytes(n)
	return err
}

func (m *memBytes) String() string {
	// "0" is what pflag treats as a zero default, so the help shows no default.
	if *m == 0 {
		return "0"
	}
	return units.BytesSize(float64(*m))
}

func (m *memBytes) Type() string { return "bytes" }

// memSwapBytes is a memBytes that also accepts -1 (unlimited swap).
type memSwapBytes int64

func (m *memSwapBytes) Set(v string) error {
	if v == "-1" {
		*m = -1
		return nil
	}
	n, err := units.RAMInBytes(v)
	*m = memSwapBytes(n)
	return err
}

func (m *memSwapBytes) String() string {
	b := memBytes(*m)
	return b.String()
}

func (m *memSwapBytes) Type() string { return "bytes" }

// nanoCPUs is a decimal number of CPUs kept in units of 1e-9 CPU.
type nanoCPUs int64

func (c *nanoCPUs) Set(v string) error {
	r, ok := new(big.Rat).SetString(v)
	if !ok {
		return fmt.Errorf("failed to parse %v as a rational number", v)
	}
	nano := r.Mul(r, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return fmt.Errorf("value is too precise")
	}
	*c = nanoCPUs(nano.Num().Int64())
	return nil
}

func (c *nanoCPUs) String() string {
	if *c == 0 {
		return ""
	}
	return big.NewRat(int64(*c), 1e9).FloatString(3)
}

func (c *nanoCPUs) Type() string { return "decimal" }

// ulimitValue collects --ulimit values by name; the last one for a name wins.
type ulimitValue struct {
	values map[string]*container.Ulimit
}

func (u *ulimitValue) Set(v string) error {
	l, err := units.ParseUlimit(v)
	if err != nil {
		return err
	}
	u.values[l.Name] = l
	return nil
}

func (u *ulimitValue) String() string {
	out := make([]string, 0, len(u.values))
	for _, l := range u.values {
		out = append(out, l.String())
	}
	sort.Strings(out)
	return fmt.Sprintf("%v", out)
}

func (u *ulimitValue) Type() string { return "ulimit" }

// list returns the ulimits sorted by name, as a non-nil slice.
func (u *ulimitValue) list() []*container.Ulimit {
	out := make([]*container.Ulimit, 0, len(u.values))
	for _, l := range u.values {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// mountValue collects --mount values.
type mountValue struct {
	values []mount.Mount
}

func (m *mountValue) Set(v string) error {
	mt, err := parseMount(v)
	if err != nil {
		return err
	}
	m.values = append(m.values, mt)
	return nil
}

func (m *mountValue) String() string {
	out := make([]string, 0, len(m.values))
	for _, mt := range m.values {
		out = append(out, fmt.Sprintf("%s %s %s", mt.Type, mt.Source, mt.Target))
	}
	return strings.Join(out, ", ")
}

func (m *mountValue) Type() string { return "mount" }

// networkValue collects --network values, in the short (NAME) or the long
// (name=NAME,alias=A,...) syntax.
type networkValue struct {
	values []attachment
}

func (n *networkValue) Set(v string) error {
	a, err := parseNetworkFlag(v)
	if err != nil {
		return err
	}
	n.values = append(n.values, a)
	return nil
}

func (n *networkValue) String() string { return "" }
func (n *networkValue) Type() string   { return "network" }

// mode is the network mode the CLI sends: the first network, or "default".
func (n *networkValue) mode() string {
	if len(n.values) == 0 {
		return "default"
	}
	return n.values[0].target
}
