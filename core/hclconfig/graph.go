package hclconfig

import (
	"fmt"
	"io"
	"strings"
)

// GraphFormat names a graph notation.
type GraphFormat string

// The graph notations WriteGraph writes.
const (
	DOT     GraphFormat = "dot"
	Mermaid GraphFormat = "mermaid"
)

// WriteGraph draws the pipeline as a chain of its steps in run order (checks as diamonds
// between the stages), each labelled with its implementation.
func (p *Plan) WriteGraph(w io.Writer, format GraphFormat) error {
	steps := p.steps()
	var b strings.Builder
	switch format {
	case DOT:
		b.WriteString("digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n")
		for _, s := range steps {
			shape := ""
			if s.check != nil {
				shape = ", shape=diamond"
			}
			fmt.Fprintf(&b, "  %s [label=%s%s];\n", s.id, dotQuote(s.label+"\n"+stepImpl(s)), shape)
		}
		for i := 1; i < len(steps); i++ {
			fmt.Fprintf(&b, "  %s -> %s;\n", steps[i-1].id, steps[i].id)
		}
		b.WriteString("}\n")
	case Mermaid:
		b.WriteString("flowchart LR\n")
		for _, s := range steps {
			label := mermaidQuote(s.label + "<br/>" + stepImpl(s))
			if s.check != nil {
				fmt.Fprintf(&b, "  %s{%s}\n", s.id, label)
			} else {
				fmt.Fprintf(&b, "  %s[%s]\n", s.id, label)
			}
		}
		for i := 1; i < len(steps); i++ {
			fmt.Fprintf(&b, "  %s --> %s\n", steps[i-1].id, steps[i].id)
		}
	default:
		return fmt.Errorf("unknown graph format %q: use dot or mermaid", format)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func stepImpl(s step) string {
	if s.check != nil {
		return s.check.Key
	}
	return s.stage.Key
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func mermaidQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"`
}
