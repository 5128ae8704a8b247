package graph

import (
	"fmt"
	"strings"
)

// Severity of a diagnostic.
type Severity string

// Severities.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Diag is one problem found in a graph file, with where it is.
type Diag struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"column,omitempty"`
	Severity Severity `json:"severity"`
	Subject  string   `json:"subject,omitempty"` // node "src", edge src -> out, config key, ...
	Msg      string   `json:"message"`
}

func (d Diag) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
	}
	b.WriteString(": ")
	if d.Severity == SevWarning {
		b.WriteString("warning: ")
	}
	if d.Subject != "" {
		b.WriteString(d.Subject)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diags is a list of diagnostics; as an error it lists the errors.
type Diags []Diag

// Errors returns only the errors.
func (ds Diags) Errors() Diags {
	var out Diags
	for _, d := range ds {
		if d.Severity == SevError {
			out = append(out, d)
		}
	}
	return out
}

// Warnings returns only the warnings.
func (ds Diags) Warnings() Diags {
	var out Diags
	for _, d := range ds {
		if d.Severity == SevWarning {
			out = append(out, d)
		}
	}
	return out
}

// HasErrors reports whether any diagnostic is an error.
func (ds Diags) HasErrors() bool { return len(ds.Errors()) > 0 }

func (ds Diags) Error() string {
	var lines []string
	for _, d := range ds.Errors() {
		lines = append(lines, d.String())
	}
	return strings.Join(lines, "\n")
}

// Pos is a place in a graph file.
type Pos struct {
	Line, Col int
}
