package hclconfig

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics renders diags with hcl's text writer, with a snippet of the source for
// each range. Sources are the files the diagnostics name, read again from disk unless given
// in srcs (for pipelines loaded with LoadSources).
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, width uint, color bool, srcs ...Source) error {
	files := map[string]*hcl.File{}
	for _, s := range srcs {
		files[s.Name] = &hcl.File{Bytes: s.Bytes}
	}
	add := func(r *hcl.Range) {
		if r == nil || r.Filename == "" {
			return
		}
		if _, ok := files[r.Filename]; ok {
			return
		}
		if b, err := os.ReadFile(r.Filename); err == nil {
			files[r.Filename] = &hcl.File{Bytes: b}
		}
	}
	for _, d := range diags {
		add(d.Subject)
		add(d.Context)
	}
	// hcl's writer names the line only; the column goes in too ("on f.hcl:7:12"), so
	// editors and people can jump to the exact place.
	var buf bytes.Buffer
	tw := hcl.NewDiagnosticTextWriter(&buf, files, width, color)
	for _, d := range diags {
		buf.Reset()
		if err := tw.WriteDiagnostic(d); err != nil {
			return err
		}
		out := buf.String()
		if r := d.Subject; r != nil {
			out = strings.Replace(out, fmt.Sprintf("  on %s line %d", r.Filename, r.Start.Line),
				fmt.Sprintf("  on %s:%d:%d", r.Filename, r.Start.Line, r.Start.Column), 1)
		}
		if _, err := io.WriteString(w, out); err != nil {
			return err
		}
	}
	return nil
}
