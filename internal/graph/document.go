package graph

import (
	"errors"
	"os"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Document is a YAML file other than a graph (a process graph spec, say)
// read with the graph loader's limits, hostile-input checks and
// ${...} interpolation, keeping the position of every value.
type Document struct {
	File string
	Root *packet.Map
	g    *Graph
}

// PosOf returns the position of a value path such as "processes[0].graph".
func (d *Document) PosOf(path string) Pos { return d.g.PosOf(path) }

// LoadDocumentFile reads a YAML document within lim. Its top level must be
// a mapping; the diagnostics name the file and line.
func LoadDocumentFile(path string, getenv func(string) (string, bool), lim Limits) (*Document, Diags) {
	lim = lim.withDefaults()
	data, err := readAtMost(path, lim.MaxFileBytes+1)
	if err != nil {
		msg := "cannot read " + path + ": " + err.Error()
		if errors.Is(err, os.ErrNotExist) {
			msg = "file not found: " + path
		}
		return nil, Diags{{File: path, Severity: SevError, Msg: msg}}
	}
	if getenv == nil {
		getenv = os.LookupEnv
	}
	g, l, root := loadDoc(path, data, getenv, lim)
	if root == nil || l.diags.HasErrors() {
		return nil, l.diags
	}
	return &Document{File: path, Root: root, g: g}, l.diags
}
