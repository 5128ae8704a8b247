package graph

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Limits bound what loading one graph file may cost. Graph files may come
// from untrusted hands (an HTTP API, a shared directory), so the loader
// refuses, with the line, a file that would take the host down: a huge
// file, deep nesting, aliases or interpolations that expand
// exponentially ("billion laughs"), a huge scalar. Upstream has no such
// limits (docs/compat.md).
type Limits struct {
	// MaxFileBytes is the largest file read at all.
	MaxFileBytes int64
	// MaxDepth is the deepest nesting of mappings and sequences, counted
	// after aliases are expanded.
	MaxDepth int
	// MaxNodes is the most values (mappings, sequences, keys and scalars)
	// the document may hold after aliases, merge keys (<<) and
	// ${...} interpolations are expanded.
	MaxNodes int
	// MaxScalarBytes is the longest scalar, as written in the file or as
	// produced by interpolation.
	MaxScalarBytes int
}

// DefaultLimits are generous for hand-written graphs (the largest example
// in configs/ is a few KiB) and keep `schnitzel validate` on a hostile file
// within tens of MiB.
var DefaultLimits = Limits{
	MaxFileBytes:   8 << 20,
	MaxDepth:       64,
	MaxNodes:       100_000,
	MaxScalarBytes: 1 << 20,
}

// The knobs that raise each limit, named in every limit error. The CLI
// (cli) maps each to a flag and an environment variable.
const (
	knobBytes  = "--max-graph-bytes or SCHNITZEL_MAX_GRAPH_BYTES"
	knobDepth  = "--max-graph-depth or SCHNITZEL_MAX_GRAPH_DEPTH"
	knobNodes  = "--max-graph-nodes or SCHNITZEL_MAX_GRAPH_NODES"
	knobScalar = "--max-graph-scalar-bytes or SCHNITZEL_MAX_GRAPH_SCALAR_BYTES"
)

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = DefaultLimits.MaxNodes
	}
	if l.MaxScalarBytes <= 0 {
		l.MaxScalarBytes = DefaultLimits.MaxScalarBytes
	}
	return l
}

// limitError is a limit that was hit, with where.
type limitError struct {
	pos Pos
	msg string
}

func (e *limitError) Error() string { return e.msg }

func fileTooBig(size, limit int64) string {
	return fmt.Sprintf("graph file is larger than the limit of %s (%s); raise it with %s", sizeStr(limit), sizeStr(size), knobBytes)
}

func tooDeep(limit int) string {
	return fmt.Sprintf("nesting deeper than the limit of %d levels; raise it with %s", limit, knobDepth)
}

func tooManyNodes(what string, limit int) string {
	return fmt.Sprintf("%s more than the limit of %d values; raise it with %s", what, limit, knobNodes)
}

func scalarTooBig(what string, limit int) string {
	return fmt.Sprintf("%s longer than the limit of %s; raise it with %s", what, sizeStr(int64(limit)), knobScalar)
}

// sizeStr prints a byte count the way the defaults are written (8 MiB).
func sizeStr(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

var bom = []byte("\xEF\xBB\xBF")

// checkText strips a UTF-8 byte order mark (editors on Windows write one;
// left in, it would make the first key "\ufeffversion") and refuses, with
// the line, invalid UTF-8 (rather than turning it into U+FFFD) and the
// control characters YAML does not allow in a stream.
func checkText(data []byte) ([]byte, *limitError) {
	data = bytes.TrimPrefix(data, bom)
	ascii := true
	for _, c := range data {
		if c >= 0x80 || c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return data, nil // the common case, checked without decoding
	}
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return nil, &limitError{Pos{line, col}, fmt.Sprintf("invalid UTF-8 (byte 0x%02x); graph files must be UTF-8", data[i])}
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f, r >= 0x80 && r <= 0x9f && r != 0x85, r == 0xfeff && i > 0, r == 0xfffe, r == 0xffff:
			return nil, &limitError{Pos{line, col}, fmt.Sprintf("control character %U is not allowed in YAML; write it as an escape in a double-quoted string", r)}
		case r == '\n' || r == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			line, col = line+1, 1
		default:
			col++
		}
		i += size
	}
	return data, nil
}
