package hclconfig

import (
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions returns the functions a pipeline file may call. Relative paths given to file()
// are relative to dir, the directory of the pipeline.
func functions(dir string) map[string]function.Function {
	return map[string]function.Function{
		"env":        envFunc,
		"file":       fileFunc(dir),
		"cidrsubnet": cidrSubnetFunc,
		"cidrhost":   cidrHostFunc,
		"upper":      stdlib.UpperFunc,
		"lower":      stdlib.LowerFunc,
		"title":      stdlib.TitleFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"replace":    stdlib.ReplaceFunc,
		"split":      stdlib.SplitFunc,
		"join":       stdlib.JoinFunc,
		"format":     stdlib.FormatFunc,
		"formatlist": stdlib.FormatListFunc,
		"substr":     stdlib.SubstrFunc,
		"strlen":     stdlib.StrlenFunc,
		"length":     stdlib.LengthFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"lookup":     stdlib.LookupFunc,
		"merge":      stdlib.MergeFunc,
		"keys":       stdlib.KeysFunc,
		"values":     stdlib.ValuesFunc,
		"min":        stdlib.MinFunc,
		"max":        stdlib.MaxFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"tostring":   stdlib.MakeToFunc(cty.String),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"tobool":     stdlib.MakeToFunc(cty.Bool),
	}
}

// envFunc returns an environment variable, or "" when it is not set (as Packer's env).
var envFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "name", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(os.Getenv(args[0].AsString())), nil
	},
})

// fileFunc reads a UTF-8 file, relative to dir unless absolute.
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read %s: %w", p, err)
			}
			if !utf8.Valid(b) {
				return cty.NilVal, fmt.Errorf("%s is not valid UTF-8", p)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

// cidrSubnetFunc is cidrsubnet(prefix, newbits, netnum): the netnum-th subnet of prefix with
// newbits more bits of network number.
var cidrSubnetFunc = function.New(&function.Spec{
	Params: []function.Parameter{
		{Name: "prefix", Type: cty.String},
		{Name: "newbits", Type: cty.Number},
		{Name: "netnum", Type: cty.Number},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.NilVal, function.NewArgErrorf(0, "invalid CIDR prefix: %s", err)
		}
		p = p.Masked()
		newbits, ok := smallInt(args[1])
		if !ok || newbits < 0 || p.Bits()+newbits > p.Addr().BitLen() {
			return cty.NilVal, function.NewArgErrorf(1, "newbits must be between 0 and %d", p.Addr().BitLen()-p.Bits())
		}
		num := args[2].AsBigFloat()
		n, acc := num.Int(nil)
		if acc != big.Exact || n.Sign() < 0 || n.BitLen() > newbits {
			return cty.NilVal, function.NewArgErrorf(2, "netnum must be a whole number between 0 and %d", (1<<min(newbits, 62))-1)
		}
		bits := p.Bits() + newbits
		addr := addBits(p.Addr(), n, p.Addr().BitLen()-bits)
		return cty.StringVal(netip.PrefixFrom(addr, bits).String()), nil
	},
})

// cidrHostFunc is cidrhost(prefix, hostnum): the hostnum-th address of prefix.
var cidrHostFunc = function.New(&function.Spec{
	Params: []function.Parameter{
		{Name: "prefix", Type: cty.String},
		{Name: "hostnum", Type: cty.Number},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.NilVal, function.NewArgErrorf(0, "invalid CIDR prefix: %s", err)
		}
		p = p.Masked()
		n, acc := args[1].AsBigFloat().Int(nil)
		hostBits := p.Addr().BitLen() - p.Bits()
		if acc != big.Exact || n.Sign() < 0 || n.BitLen() > hostBits {
			return cty.NilVal, function.NewArgErrorf(1, "hostnum must be a whole number that fits in the %d host bits of %s", hostBits, p)
		}
		return cty.StringVal(addBits(p.Addr(), n, 0).String()), nil
	},
})

func smallInt(v cty.Value) (int, bool) {
	i, acc := v.AsBigFloat().Int64()
	if acc != big.Exact || i > 1<<16 || i < -1<<16 {
		return 0, false
	}
	return int(i), true
}

// addBits returns addr with n added at bit position shift (counted from the low end).
func addBits(addr netip.Addr, n *big.Int, shift int) netip.Addr {
	b := addr.AsSlice()
	x := new(big.Int).SetBytes(b)
	x.Add(x, new(big.Int).Lsh(n, uint(shift)))
	out := x.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return a
}
