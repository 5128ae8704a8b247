// Package blob holds upstream's blob reference nodes (blob_ref.py):
// BytesToFileRefNode writes a bytes payload to a file and emits a
// JSON-portable reference to it (kind bytes_ref), so that the bytes can
// cross a durable queue or an HTTP hop; FileRefToBytesNode reads the
// referenced file back (kind bytes).
//
// The reference is upstream's, field for field:
//
//	{"ref": {"scheme": "file", "path": "/abs/dir/cam01/<packet_id>.bin",
//	         "content_type": null, "size_bytes": 5, "sha256": "<hex>"}}
//
// Fixed against upstream (docs/compat.md D-BLOB-1, D-BLOB-2): writes are
// atomic (a temporary file, fsync, then link or rename, then the
// directory's fsync) with mode 0600 or 0640 and never overwrite a blob with
// other content; names rendered from packet fields cannot leave the
// directory; reads are confined to a configured dir (os.Root, so a symlink
// swapped in after the check cannot lead out), limited in size, and the
// ref's size_bytes and sha256 are checked against the content.
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

const mod = "schnitzel_stream.nodes.blob_ref:"

// DefaultMaxBytes is the default size limit of one blob, on write and on
// read: 64 MiB.
const DefaultMaxBytes = 64 << 20

// Register adds the blob reference nodes to r.
func Register(r *plugin.Registry) {
	registerWriter(r)
	registerReader(r)
}

// checkDir is the shared check of the dir key.
func checkDir(dir string) error {
	if strings.TrimSpace(dir) == "" {
		return plugin.Errorf("dir", "dir must be a non-empty path")
	}
	return nil
}

func checkMaxBytes(n int64) error {
	if n <= 0 {
		return plugin.Errorf("max_bytes", "max_bytes must be > 0 (got %d)", n)
	}
	return nil
}

// absDir returns dir as an absolute, clean path (relative to the working
// directory, like every other path in a graph; upstream resolved it
// against the repo root).
func absDir(dir string) (string, error) {
	return filepath.Abs(strings.TrimSpace(dir))
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// segment is one piece of a filename template: a literal or a field.
type segment struct {
	lit   string
	field string // "source_id" or "packet_id"; "" for a literal
}

// parseTemplate reads a Python str.format template restricted to the
// fields {source_id} and {packet_id} ({{ and }} are literal braces). Any
// other field, a conversion or a format spec is an error at load time
// (upstream failed at run time).
func parseTemplate(t string) ([]segment, error) {
	var segs []segment
	var lit strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '{' && i+1 < len(t) && t[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(t) && t[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return nil, errors.New("unclosed '{'")
			}
			name := t[i+1 : i+end]
			if name != "source_id" && name != "packet_id" {
				return nil, fmt.Errorf("unknown field {%s} (known: {source_id}, {packet_id})", name)
			}
			if lit.Len() > 0 {
				segs = append(segs, segment{lit: lit.String()})
				lit.Reset()
			}
			segs = append(segs, segment{field: name})
			i += end
		case c == '}':
			return nil, errors.New("single '}' (write '}}' for a literal brace)")
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		segs = append(segs, segment{lit: lit.String()})
	}
	return segs, nil
}

// safeComponent returns v when it is a harmless file name component
// (letters, digits, '.', '_', '-'; not "." or ".."; at most 128 bytes),
// otherwise "h-" and the first 32 hex digits of its sha256: a packet
// field can never add a separator, climb out or name a device.
func safeComponent(v string) string {
	ok := v != "" && v != "." && v != ".." && len(v) <= 128
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if ok {
		return v
	}
	h := sha256.Sum256([]byte(v))
	return "h-" + hex.EncodeToString(h[:16])
}

// render fills the template and returns a clean path relative to dir, or
// an error when the template's own literal text would leave dir.
func render(segs []segment, sourceID, packetID string) (string, error) {
	var b strings.Builder
	for _, s := range segs {
		switch s.field {
		case "":
			b.WriteString(s.lit)
		case "source_id":
			b.WriteString(safeComponent(sourceID))
		case "packet_id":
			b.WriteString(safeComponent(packetID))
		}
	}
	// upstream strips leading slashes, so "/{packet_id}.bin" stays in dir
	rel := filepath.Clean(strings.TrimLeft(b.String(), `/\`))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("file name %q leaves dir", rel)
	}
	return rel, nil
}
