// Package fleet turns upstream's fleet file (configs/fleet.yaml:
// streams[], legacy cameras[]) and a graph template into one in-process
// graph per stream, named fleet.<id>, applied through the serve Backend
// with the stream's SS_* variables (new and legacy names, as upstream's
// ops/fleet.py sets them) instead of one OS process and a PID file per
// stream.
package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Bounds on a fleet file: it arrives in a request body.
const (
	MaxFileBytes = 1 << 20
	MaxStreams   = 1000
)

// idPattern: a stream id becomes part of a graph name (fleet.<id>) and,
// upstream, a file name; no dots, slashes or control characters, so it
// can never traverse (D-FLT-1).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// MaxIDLen keeps fleet.<id> within a graph name's 64 characters.
const MaxIDLen = 64 - len(Prefix)

// ValidID reports whether id is an acceptable stream id.
func ValidID(id string) bool { return idPattern.MatchString(id) && len(id) <= MaxIDLen }

// Upstream's default source plugin per input type (ops/fleet.py
// _INPUT_PLUGIN_DEFAULTS); our vision pack registers these names.
var defaultPlugins = map[string]string{
	"rtsp":   "schnitzel_stream.packs.vision.nodes:OpenCvRtspSource",
	"file":   "schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource",
	"webcam": "schnitzel_stream.packs.vision.nodes:OpenCvWebcamSource",
}

// Stream is one entry of the fleet file.
type Stream struct {
	ID      string
	Name    string // human name, not used (as upstream)
	Enabled bool
	Type    string // rtsp, file, webcam, plugin (no type: plugin)
	Plugin  string // input.plugin, else the type's default
	URL     string
	Path    string
	Index   *int // input.index or input.camera_index
	Line    int  // line of the entry in the fleet file
	Legacy  bool // from cameras[] / source
}

// File is a parsed fleet file.
type File struct {
	Name    string   // for messages
	Streams []Stream // every entry, disabled ones too, in file order
	Legacy  bool     // read from cameras[] (streams[] empty or missing)
}

// Enabled returns the enabled streams, in file order.
func (f *File) Enabled() []Stream {
	var out []Stream
	for _, s := range f.Streams {
		if s.Enabled {
			out = append(out, s)
		}
	}
	return out
}

// Stream returns the entry with id, or nil.
func (f *File) Stream(id string) *Stream {
	for i := range f.Streams {
		if f.Streams[i].ID == id {
			return &f.Streams[i]
		}
	}
	return nil
}

// Problem is one thing wrong with a fleet file, with where it is.
type Problem struct {
	File   string
	Line   int
	Stream string // the stream's id when known
	Field  string // e.g. "input.url"
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Stream != "" {
		fmt.Fprintf(&b, "stream %q: ", p.Stream)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in a fleet file.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Parse reads a fleet file. name is used in messages. Every problem is
// reported at once (an *Error), before anything is started: upstream
// raised on the first bad stream after starting the earlier ones (D-API-6).
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{[]Problem{{File: name, Msg: fmt.Sprintf("fleet file is %d bytes, more than the limit of %d", len(data), MaxFileBytes)}}}
	}
	p := &parser{file: name}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{[]Problem{{File: name, Msg: "fleet file is empty: it needs a streams: list"}}}
		}
		return nil, &Error{[]Problem{{File: name, Line: yamlErrLine(err), Msg: "invalid YAML: " + err.Error()}}}
	}
	f := p.file1(&root)
	if len(p.probs) > 0 {
		return nil, &Error{p.probs}
	}
	return f, nil
}

var lineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

type parser struct {
	file  string
	probs []Problem
}

func (p *parser) add(line int, stream, field, format string, args ...any) {
	p.probs = append(p.probs, Problem{File: p.file, Line: line, Stream: stream, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// deref follows an alias (the node tree is walked to a fixed depth, so
// aliases cannot make the walk grow beyond what the file holds times that
// depth).
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// get returns the value of key in mapping m (nil when absent).
func get(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if kn := deref(m.Content[i]); kn.Kind == yaml.ScalarNode && kn.Value == key {
			return kn, deref(m.Content[i+1])
		}
	}
	return nil, nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func (p *parser) file1(root *yaml.Node) *File {
	f := &File{Name: p.file}
	doc := deref(root)
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = deref(doc.Content[0])
	}
	if isNull(doc) {
		p.add(doc.Line, "", "", "fleet file is empty: it needs a streams: list")
		return f
	}
	if doc.Kind != yaml.MappingNode {
		p.add(doc.Line, "", "", "the top level must be a mapping with a streams: list")
		return f
	}
	section := "streams"
	_, list := get(doc, "streams")
	if isNull(list) || (list.Kind == yaml.SequenceNode && len(list.Content) == 0) {
		// Upstream reads the legacy cameras[] list only when streams[] is
		// empty or missing (ops/fleet.py load_stream_specs).
		if _, cams := get(doc, "cameras"); !isNull(cams) {
			section, list, f.Legacy = "cameras", cams, true
		}
	}
	if isNull(list) {
		p.add(doc.Line, "", "streams", "missing: the fleet file needs a streams: list (or the legacy cameras: list)")
		return f
	}
	if list.Kind != yaml.SequenceNode {
		p.add(list.Line, "", section, "must be a list of streams")
		return f
	}
	if len(list.Content) > MaxStreams {
		p.add(list.Line, "", section, "%d entries, more than the limit of %d", len(list.Content), MaxStreams)
		return f
	}
	seen := map[string]int{}
	for i, item := range list.Content {
		s, ok := p.stream(deref(item), fmt.Sprintf("%s[%d]", section, i), f.Legacy)
		if !ok {
			continue
		}
		if first, dup := seen[s.ID]; dup {
			p.add(s.Line, s.ID, "id", "duplicate stream id (first defined on line %d)", first)
			continue
		}
		seen[s.ID] = s.Line
		f.Streams = append(f.Streams, s)
	}
	return f
}

func scalar(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(m *yaml.Node, stream, field string, keys ...string) (string, int) {
	for _, k := range keys {
		kn, v := get(m, k)
		if kn == nil || isNull(v) {
			continue
		}
		s, ok := scalar(v)
		if !ok {
			p.add(v.Line, stream, field, "must be a string")
			return "", v.Line
		}
		return strings.TrimSpace(s), v.Line
	}
	return "", 0
}

func (p *parser) stream(item *yaml.Node, path string, legacy bool) (Stream, bool) {
	s := Stream{Line: item.Line, Enabled: true, Legacy: legacy}
	if item.Kind != yaml.MappingNode {
		p.add(item.Line, "", path, "must be a mapping with id and input")
		return s, false
	}
	// Upstream: id, else stream_id, else camera_id; an entry without one
	// is skipped silently there, an error here (it cannot be addressed).
	id, idLine := p.str(item, "", path+".id", "id", "stream_id", "camera_id")
	if idLine == 0 {
		idLine = item.Line
	}
	switch {
	case id == "":
		p.add(idLine, "", path+".id", "missing: every stream needs an id")
		return s, false
	case !ValidID(id):
		p.add(idLine, "", path+".id", "%q is not a valid stream id (1-%d of A-Z a-z 0-9 _ -, starting with a letter or digit: fleet.<id> is a graph name)", id, MaxIDLen)
		return s, false
	}
	s.ID = id
	s.Name, _ = p.str(item, id, "name", "name")
	if _, en := get(item, "enabled"); !isNull(en) {
		b, ok := parseBool(en)
		if !ok {
			p.add(en.Line, id, "enabled", "must be true or false, not %q", en.Value)
		}
		s.Enabled = b
	}
	inputKey := "input"
	_, in := get(item, "input")
	if isNull(in) {
		if _, src := get(item, "source"); !isNull(src) {
			inputKey, in = "source", src
		}
	}
	if !isNull(in) && in.Kind != yaml.MappingNode {
		p.add(in.Line, id, inputKey, "must be a mapping (type, url, path, index, plugin)")
		return s, true
	}
	typ, typLine := p.str(in, id, inputKey+".type", "type")
	s.Type = strings.ToLower(typ)
	if s.Type == "" {
		s.Type = "plugin"
	}
	if typLine == 0 {
		typLine = s.Line
		if in != nil {
			typLine = in.Line
		}
	}
	s.Plugin, _ = p.str(in, id, inputKey+".plugin", "plugin")
	var urlLine, pathLine int
	s.URL, urlLine = p.str(in, id, inputKey+".url", "url")
	s.Path, pathLine = p.str(in, id, inputKey+".path", "path")
	for _, k := range []string{"index", "camera_index"} {
		kn, v := get(in, k)
		if kn == nil || isNull(v) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v.Value))
		switch {
		case v.Kind != yaml.ScalarNode || err != nil:
			p.add(v.Line, id, inputKey+"."+k, "must be an integer, not %q", v.Value)
		case n < 0:
			p.add(v.Line, id, inputKey+"."+k, "must be >= 0, not %d", n)
		default:
			s.Index = &n
		}
		break
	}
	if !s.Enabled {
		return s, true // upstream ignores disabled entries beyond their id
	}
	if s.Plugin == "" {
		s.Plugin = defaultPlugins[s.Type]
		if s.Plugin == "" {
			p.add(typLine, id, inputKey+".type", "unsupported input type %q without %s.plugin: use rtsp, file, webcam, or plugin with %s.plugin", s.Type, inputKey, inputKey)
		}
	}
	switch s.Type {
	case "rtsp":
		if s.URL == "" {
			p.add(lineOr(urlLine, typLine), id, inputKey+".url", "missing: input type rtsp needs a url")
		}
	case "file":
		if s.Path == "" {
			p.add(lineOr(pathLine, typLine), id, inputKey+".path", "missing: input type file needs a path")
		}
	}
	return s, true
}

func lineOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// parseBool takes YAML 1.1's spellings as upstream's loader does.
func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "true", "yes", "y", "on":
		return true, true
	case "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// Env is the stream's ${oc.env:...} variables, under the new names and
// the legacy ones upstream still sets "for one cycle" (ops/fleet.py
// build_stream_env). A relative input path is joined to baseDir when it
// is not empty (upstream: the repo root).
func (s Stream) Env(baseDir string) map[string]string {
	env := map[string]string{
		"SS_STREAM_ID": s.ID, "SS_CAMERA_ID": s.ID,
		"SS_INPUT_TYPE": s.Type, "SS_SOURCE_TYPE": s.Type,
		"SS_INPUT_PLUGIN": s.Plugin, "SS_SOURCE_PLUGIN": s.Plugin,
	}
	passURL, passPath, passIndex := false, false, false
	switch s.Type {
	case "rtsp":
		passURL = true
	case "file":
		passPath = true
	case "webcam":
		passIndex = true
		if s.Index == nil {
			zero := 0
			s.Index = &zero // upstream's default camera
		}
	case "plugin":
		passURL, passPath, passIndex = true, true, true
	}
	if passURL && s.URL != "" {
		env["SS_INPUT_URL"], env["SS_SOURCE_URL"] = s.URL, s.URL
	}
	if passPath && s.Path != "" {
		p := s.Path
		if baseDir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		env["SS_INPUT_PATH"], env["SS_SOURCE_PATH"] = p, p
	}
	if passIndex && s.Index != nil {
		v := strconv.Itoa(*s.Index)
		env["SS_INPUT_INDEX"], env["SS_CAMERA_INDEX"] = v, v
	}
	return env
}
