package graph

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// LoadFile reads and loads a graph file within DefaultLimits. getenv
// answers ${oc.env:...} (nil means the process environment).
func LoadFile(path string, getenv func(string) (string, bool)) (*Graph, Diags) {
	return LoadFileLimited(path, getenv, DefaultLimits)
}

// LoadFileLimited is LoadFile within lim (zero fields: the default). It
// reads at most lim.MaxFileBytes+1 bytes, so a huge file (or /dev/zero)
// costs no more than the limit.
func LoadFileLimited(path string, getenv func(string) (string, bool), lim Limits) (*Graph, Diags) {
	lim = lim.withDefaults()
	data, err := readAtMost(path, lim.MaxFileBytes+1)
	if err != nil {
		var msg string
		if errors.Is(err, os.ErrNotExist) {
			msg = "graph spec not found: " + path
		} else {
			msg = "cannot read graph file: " + err.Error()
		}
		return nil, Diags{{File: path, Severity: SevError, Msg: msg}}
	}
	return LoadLimited(path, data, getenv, lim)
}

// nonRegularReadTimeout bounds reading a graph from a pipe or device.
const nonRegularReadTimeout = 1500 * time.Millisecond

func readAtMost(path string, n int64) ([]byte, error) {
	f, err := openGraph(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	st, err := f.Stat()
	if err == nil && st.Mode().IsRegular() {
		buf.Grow(int(min(st.Size(), n)) + 1)
	}
	_, err = buf.ReadFrom(io.LimitReader(f, n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("no data from %s within %s (a named pipe or device, not a regular file)", path, nonRegularReadTimeout)
	}
	if err == nil && buf.Len() == 0 && st != nil && st.Mode()&os.ModeNamedPipe != 0 {
		return nil, fmt.Errorf("%s is a named pipe with no writer; graph files are read from regular files", path)
	}
	return buf.Bytes(), err
}

// loader collects diagnostics while it builds the model.
type loader struct {
	g      *Graph
	diags  Diags
	getenv func(string) (string, bool)
}

func (l *loader) add(sev Severity, path, subject, format string, args ...any) {
	p := l.g.PosOf(path)
	if p.Line == 0 {
		p = Pos{Line: 1} // a whole-file problem (a missing key)
	}
	l.diags = append(l.diags, Diag{File: l.g.File, Line: p.Line, Col: p.Col, Severity: sev, Subject: subject, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) errf(path, subject, format string, args ...any) {
	l.add(SevError, path, subject, format, args...)
}

func (l *loader) warnf(path, subject, format string, args ...any) {
	l.add(SevWarning, path, subject, format, args...)
}

// Load parses graph YAML within DefaultLimits. It returns the graph (nil
// when the file cannot be understood at all) and every problem found.
func Load(file string, data []byte, getenv func(string) (string, bool)) (*Graph, Diags) {
	return LoadLimited(file, data, getenv, DefaultLimits)
}

// LoadLimited is Load within lim (zero fields: the default).
func LoadLimited(file string, data []byte, getenv func(string) (string, bool), lim Limits) (*Graph, Diags) {
	g, diags := load(file, data, getenv, lim)
	// The parser may place a value that is not written (the null of a
	// trailing "key:" or "---") on the line after the last: say the last.
	if last := lineCount(data); len(diags) > 0 {
		for i := range diags {
			if diags[i].Line > last {
				diags[i].Line, diags[i].Col = last, 0
			}
		}
	}
	return g, diags
}

// lineCount counts lines as YAML breaks them (LF, CRLF, lone CR).
func lineCount(data []byte) int {
	return 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n"))
}

func loadDoc(file string, data []byte, getenv func(string) (string, bool), lim Limits) (*Graph, *loader, *packet.Map) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxFileBytes {
		// The line where the file passes the limit.
		line := 1 + bytes.Count(data[:lim.MaxFileBytes], []byte("\n"))
		msg := fileTooBig(int64(len(data)), lim.MaxFileBytes)
		if int64(len(data)) == lim.MaxFileBytes+1 {
			// LoadFile read no further than this.
			msg = fmt.Sprintf("graph file is larger than the limit of %s; raise it with %s", sizeStr(lim.MaxFileBytes), knobBytes)
		}
		return nil, &loader{diags: Diags{{File: file, Line: line, Severity: SevError, Msg: msg}}}, nil
	}
	data, lerr := checkText(data)
	if lerr != nil {
		return nil, &loader{diags: Diags{{File: file, Line: lerr.pos.Line, Col: lerr.pos.Col, Severity: SevError, Msg: lerr.msg}}}, nil
	}
	d, err := parseYAML(data, lim)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &loader{diags: Diags{{File: file, Line: se.pos.Line, Col: se.pos.Col, Severity: SevError, Msg: se.msg}}}, nil
		}
		var le *limitError
		if errors.As(err, &le) {
			return nil, &loader{diags: Diags{{File: file, Line: le.pos.Line, Col: le.pos.Col, Severity: SevError, Msg: le.msg}}}, nil
		}
		return nil, &loader{diags: Diags{{File: file, Line: 1, Severity: SevError, Msg: err.Error()}}}, nil
	}
	g := &Graph{File: file, pos: d.pos}
	l := &loader{g: g, getenv: getenv}
	for _, e := range d.errs {
		l.diags = append(l.diags, Diag{File: file, Line: e.pos.Line, Col: e.pos.Col, Severity: SevError, Msg: e.msg})
	}
	root, ok := d.root.(*packet.Map)
	if !ok {
		// Upstream's message, with what was found and where (line 1 for
		// an empty file).
		p := d.pos[""]
		if p.Line == 0 || d.root == nil { // yaml.v3 places "---" alone's null on line 2
			p = Pos{Line: 1}
		}
		l.diags = append(l.diags, Diag{File: file, Line: p.Line, Col: p.Col, Severity: SevError,
			Msg: fmt.Sprintf("graph spec top-level must be a mapping, got %s: %s", describeTop(d.root), file)})
		return nil, l, nil
	}
	ip := &interpolator{root: root, getenv: getenv, active: map[string]bool{}, lim: lim}
	ip.resolveTree(root, "")
	for _, e := range ip.errs {
		subject, rest := subjectOf(root, e.path)
		l.errf(e.path, subject, "%s: %s", rest, e.msg)
	}

	return g, l, root
}

func load(file string, data []byte, getenv func(string) (string, bool), lim Limits) (*Graph, Diags) {
	g, l, root := loadDoc(file, data, getenv, lim)
	if root == nil {
		return nil, l.diags
	}
	g.Version = l.version(root)
	switch g.Version {
	case 1:
		l.loadV1(root)
	case 2:
		l.loadV2(root)
		if !l.diags.HasErrors() {
			l.cut()
		}
	default:
		return nil, l.diags
	}
	return g, l.diags
}

func (l *loader) version(root *packet.Map) int {
	_, hasJob := root.Get("job")
	_, hasNodes := root.Get("nodes")
	_, hasEdges := root.Get("edges")
	raw, has := root.Get("version")
	if !has || raw == nil {
		if hasJob && (hasNodes || hasEdges) {
			l.errf("job", "", "graph spec is ambiguous (contains job + nodes/edges) without version: %s", l.g.File)
			return 0
		}
		if hasNodes || hasEdges {
			return 2
		}
		return 1
	}
	var v int64
	switch x := raw.(type) {
	case int64:
		v = x
	case float64:
		v = int64(x) // Python int() truncates
	case bool:
		if x {
			v = 1
		}
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			l.errf("version", "version", "graph spec version must be int: %s (got %q)", l.g.File, x)
			return 0
		}
		v = n
	default:
		l.errf("version", "version", "graph spec version must be int: %s", l.g.File)
		return 0
	}
	if v != 1 && v != 2 {
		l.errf("version", "version", "unsupported graph spec version: %d (supported: (1, 2))", v)
		return 0
	}
	return int(v)
}

func (l *loader) loadV1(root *packet.Map) {
	g := l.g
	job, _ := root.Get("job")
	s, ok := job.(string)
	if !ok || strings.TrimSpace(s) == "" {
		l.errf("job", "job", "graph spec requires 'job' (module:Name): %s", g.File)
	} else {
		g.Job = strings.TrimSpace(s)
		g.JobPos = g.PosOf("job")
		if !strings.Contains(g.Job, ":") {
			l.errf("job", "job", "plugin path must be in form 'module:Name', got %q", g.Job)
		}
	}
	g.Config = l.configMap(root, "config", "config")
	for _, e := range root.Entries() {
		switch e.Key {
		case "version", "job", "config":
		default:
			l.unknownKey(e.Key, e.Key, "v1 top-level", e.Key, topKeysV1)
		}
	}
}

func (l *loader) configMap(m *packet.Map, key, path string) *packet.Map {
	raw, ok := m.Get(key)
	if !ok || raw == nil {
		return packet.NewMap(0)
	}
	cm, isMap := raw.(*packet.Map)
	if !isMap {
		l.errf(path, path, "must be a mapping, got %s", describe(raw))
		return packet.NewMap(0)
	}
	return cm
}

var nodePath = regexp.MustCompile(`^(nodes|edges)\[(\d+)\](?:\.(.*))?$`)

// subjectOf names what a raw value path belongs to, for messages made
// before the model exists: node "id" (or nodes[i]) and the rest of the path.
func subjectOf(root *packet.Map, path string) (string, string) {
	m := nodePath.FindStringSubmatch(path)
	if m == nil {
		return "", path
	}
	i, _ := strconv.Atoi(m[2])
	subject := fmt.Sprintf("%s[%d]", m[1], i)
	if list, ok := root.Get(m[1]); ok {
		if items, ok := list.([]any); ok && i < len(items) {
			if item, ok := items[i].(*packet.Map); ok {
				if id, ok := item.GetString("id"); ok && m[1] == "nodes" {
					subject = fmt.Sprintf("node %q", id)
				}
			}
		}
	}
	return subject, m[3]
}

func describeTop(v any) string {
	if v == nil {
		return "an empty document"
	}
	return describe(v)
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "the boolean " + packet.PyStr(x)
	case int64, *big.Int:
		return "the integer " + packet.PyStr(x)
	case float64:
		return "the number " + packet.PyStr(x)
	case string:
		return fmt.Sprintf("the string %q", x)
	case []any:
		return "a list"
	case *packet.Map:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func (l *loader) list(root *packet.Map, key string) []any {
	raw, ok := root.Get(key)
	if !ok || raw == nil {
		return nil
	}
	list, isList := raw.([]any)
	if !isList {
		l.errf(key, key, "must be a list, got %s", describe(raw))
		return nil
	}
	return list
}

// str reads a required non-empty string field, trimmed.
func (l *loader) str(m *packet.Map, path, subject string, keys ...string) (string, string, bool) {
	for _, k := range keys {
		raw, ok := m.Get(k)
		if !ok || raw == nil {
			continue
		}
		s, isStr := raw.(string)
		if !isStr {
			l.errf(path+"."+k, subject, "%s must be a non-empty string, got %s", k, describe(raw))
			return "", k, false
		}
		s = strings.TrimSpace(s)
		if s == "" {
			l.errf(path+"."+k, subject, "%s must not be empty", k)
			return "", k, false
		}
		return s, k, true
	}
	return "", "", false
}

var nodeKeys = map[string]bool{"id": true, "node_id": true, "kind": true, "plugin": true, "config": true}
var edgeKeys = map[string]bool{"from": true, "to": true, "src": true, "dst": true, "from_port": true, "to_port": true, "src_port": true, "dst_port": true,
	"transport": true, "subject": true, "stream": true, "durable": true, "url": true,
	"connection": true, "sink_config": true, "source_config": true}

func (l *loader) loadV2(root *packet.Map) {
	g := l.g
	for _, e := range root.Entries() {
		switch e.Key {
		case "version", "nodes", "edges", "config":
		default:
			l.unknownKey(e.Key, e.Key, "top-level", e.Key, topKeysV2)
		}
	}
	g.Config = l.configMap(root, "config", "config")
	for i, raw := range l.list(root, "nodes") {
		path := fmt.Sprintf("nodes[%d]", i)
		m, ok := raw.(*packet.Map)
		if !ok {
			l.errf(path, fmt.Sprintf("nodes[%d]", i), "node must be a mapping, got %s", describe(raw))
			continue
		}
		n := &Node{Index: i, path: path, Pos: g.PosOf(path)}
		subject := fmt.Sprintf("nodes[%d]", i)
		id, _, ok := l.str(m, path, subject, "id", "node_id")
		if !ok {
			if !hasAny(m, "id", "node_id") { // id: ~ is no id
				l.errf(path, subject, "node requires non-empty id")
			}
		}
		n.ID = id
		if id != "" {
			subject = fmt.Sprintf("node %q", id)
			n.Pos = g.PosOf(path + ".id")
			if _, hasID := m.Get("id"); !hasID {
				n.Pos = g.PosOf(path + ".node_id")
			}
		}
		n.Kind = KindNode
		if raw, has := m.Get("kind"); has && raw != nil {
			if s, isStr := raw.(string); isStr && strings.TrimSpace(s) != "" {
				n.Kind = strings.TrimSpace(s)
			} else {
				l.errf(path+".kind", subject, "node kind must be a non-empty string, got %s", describe(raw))
			}
		}
		if pl, _, ok := l.str(m, path, subject, "plugin"); ok {
			n.Plugin = pl
			if mod, name, found := strings.Cut(pl, ":"); !found || mod == "" || name == "" {
				l.errf(path+".plugin", subject, "node plugin must be in form 'module:Name', got %q", pl)
			}
		} else if !hasAny(m, "plugin") { // plugin: ~ is no plugin
			l.errf(path, subject, "node requires non-empty plugin")
		}
		n.Config = l.configMap(m, "config", path+".config")
		l.runtimeConfig(n, subject)
		for _, e := range m.Entries() {
			if !nodeKeys[e.Key] {
				l.unknownKey(path+"."+e.Key, subject, "node", e.Key, nodeKeySet)
			}
		}
		g.Nodes = append(g.Nodes, n)
	}
	for i, raw := range l.list(root, "edges") {
		path := fmt.Sprintf("edges[%d]", i)
		m, ok := raw.(*packet.Map)
		if !ok {
			l.errf(path, path, "edge must be a mapping, got %s", describe(raw))
			continue
		}
		e := &Edge{Index: i, path: path, Pos: g.PosOf(path)}
		// src/dst beat from/to when both are written (upstream order).
		from, _, okFrom := l.str(m, path, path, "src", "from")
		to, _, okTo := l.str(m, path, path, "dst", "to")
		if !okFrom && !hasAny(m, "src", "from") {
			l.errf(path, path, "edge requires non-empty src/from")
		}
		if !okTo && !hasAny(m, "dst", "to") {
			l.errf(path, path, "edge requires non-empty dst/to")
		}
		e.From, e.To = from, to
		e.FromPort = l.port(m, path, "src_port", "from_port")
		e.ToPort = l.port(m, path, "dst_port", "to_port")
		l.edgeTransport(e, m)
		for _, kv := range m.Entries() {
			if !edgeKeys[kv.Key] {
				l.unknownKey(path+"."+kv.Key, e.Subject(), "edge", kv.Key, edgeKeySet)
			}
		}
		g.Edges = append(g.Edges, e)
	}
}

func hasAny(m *packet.Map, keys ...string) bool {
	for _, k := range keys {
		if v, ok := m.Get(k); ok && v != nil {
			return true
		}
	}
	return false
}

// Subject names an edge in messages: "edge a -> b".
func (e *Edge) Subject() string {
	from, to := e.From, e.To
	if e.FromPort != "" {
		from += "." + e.FromPort
	}
	if e.ToPort != "" {
		to += "." + e.ToPort
	}
	return fmt.Sprintf("edge %s -> %s", from, to)
}

func (l *loader) port(m *packet.Map, path string, keys ...string) string {
	for _, k := range keys {
		raw, ok := m.Get(k)
		if !ok || raw == nil {
			continue
		}
		s, isStr := raw.(string)
		if !isStr {
			l.errf(path+"."+k, path, "%s must be a string, got %s", k, describe(raw))
			return ""
		}
		return strings.TrimSpace(s)
	}
	return ""
}

func (l *loader) runtimeConfig(n *Node, subject string) {
	cfg := n.Config
	if raw, ok := cfg.Get("transport"); ok {
		s, isStr := raw.(string)
		if !isStr {
			l.errf(n.path+".config.transport", subject, "node transport must be a string, got %s", describe(raw))
		}
		n.Transport = strings.TrimSpace(s)
		if n.Transport == "" {
			l.errf(n.path+".config.transport", subject, "node transport must not be empty: %s", n.ID)
		}
	}
	raw, ok := cfg.Get("__runtime__")
	_, hasTransport := cfg.Get("transport")
	if ok || hasTransport {
		// Strip __runtime__ and transport from what the plugin sees: they
		// are the runtime's settings, not the node's.
		c := cfg.Clone(0)
		c.Delete("__runtime__")
		c.Delete("transport")
		n.Config = c
	}
	if !ok {
		return
	}
	rpath := n.path + ".config.__runtime__"
	rm, isMap := raw.(*packet.Map)
	if !isMap {
		if raw != nil {
			l.errf(rpath, subject, "__runtime__ must be a mapping, got %s", describe(raw))
		}
		return
	}
	for _, e := range rm.Entries() {
		switch e.Key {
		case "inbox_max":
			v, ok := intLike(e.Value)
			if !ok || v <= 0 {
				l.errf(rpath+".inbox_max", subject, "__runtime__.inbox_max must be a positive integer, got %s", describe(e.Value))
				continue
			}
			n.Runtime.InboxMax = int(v)
		case "inbox_max_bytes":
			v, ok := intLike(e.Value)
			if !ok || v <= 0 {
				l.errf(rpath+".inbox_max_bytes", subject, "__runtime__.inbox_max_bytes must be a positive integer (bytes), got %s", describe(e.Value))
				continue
			}
			n.Runtime.InboxMaxBytes = v
		case "inbox_overflow":
			s, _ := e.Value.(string)
			s = strings.ToLower(strings.TrimSpace(s))
			switch s {
			case OverflowBlock, OverflowDropNew, OverflowDropOldest, OverflowError:
				n.Runtime.Overflow = s
			default:
				l.errf(rpath+".inbox_overflow", subject, "__runtime__.inbox_overflow must be one of block, drop_new, drop_oldest, error; got %s", describe(e.Value))
			}
		default:
			l.warnf(rpath+"."+e.Key, subject, "unknown __runtime__ key %q%s (ignored; known: inbox_max, inbox_max_bytes, inbox_overflow)", e.Key, plugin.DidYouMean(e.Key, runtimeSet))
		}
	}
}

func intLike(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		return int64(x), x == float64(int64(x))
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}
