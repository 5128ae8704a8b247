package mapping

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Env is what an expression sees. Payload and meta are typed any so that
// the checker lets any member through; the access patcher turns member
// access on them into $get calls that read *packet.Map directly.
type Env struct {
	Payload  any    `expr:"payload"`
	Meta     any    `expr:"meta"`
	Kind     string `expr:"kind"`
	SourceID string `expr:"source_id"`
	TS       string `expr:"ts"`
	PacketID string `expr:"packet_id"`
}

// fill points the env at p. Meta is handed over as it is: a nil *Map is a
// typed nil, which $get reads as empty.
func (e *Env) fill(p *packet.Packet) {
	e.Payload = p.Payload
	if p.Meta == nil {
		e.Meta = (*packet.Map)(nil)
	} else {
		e.Meta = p.Meta
	}
	e.Kind, e.SourceID, e.TS, e.PacketID = p.Kind, p.SourceID, p.TS, p.ID
}

// program is one compiled expression with its source, for messages.
type program struct {
	src  string
	prog *vm.Program
}

// compileErr renders an expr compile error as one line with the
// expression's column (1-based), which the validator prefixes with the
// key and the graph file's line.
func compileErr(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := fe.Message
		if fe.Line > 1 {
			return fmt.Errorf("%s at line %d, column %d of the expression", msg, fe.Line, fe.Column+1)
		}
		return fmt.Errorf("%s at column %d", msg, fe.Column+1)
	}
	return err
}

// compile compiles src once; asBool makes a result that is certainly not a
// bool a compile error.
func compile(src string, asBool bool) (*program, error) {
	return compileIn(src, asBool, Env{})
}

// compileIn is compile against another env struct (a Window's aggregate
// over items).
func compileIn(src string, asBool bool, env any) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	opts := append(slices.Clip(baseOptions), expr.Env(env))
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, compileErr(err)
	}
	return &program{src: src, prog: p}, nil
}

// runner evaluates programs for one node: the VM's stack is reused, so a
// runner belongs to one goroutine (the node's).
type runner struct {
	vm  vm.VM
	env Env
}

func (r *runner) run(p *program) (any, error) { return r.runIn(p, &r.env) }

// runIn evaluates p against env, of the type p was compiled for.
func (r *runner) runIn(p *program, env any) (any, error) {
	out, err := r.vm.Run(p.prog, env)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s: %s at column %d", p.src, fe.Message, fe.Column+1)
		}
		return nil, fmt.Errorf("%s: %w", p.src, err)
	}
	return out, nil
}

// baseOptions are the compile options every expression shares, built
// once: compiles may run concurrently (validation) and only read them.
var baseOptions = options()

func options() []expr.Option {
	o := []expr.Option{
		expr.Patch(accessPatcher{}),
		expr.Function(fnGet, func(a ...any) (any, error) { return get(a[0], a[1], false) }),
		expr.Function(fnGetOpt, func(a ...any) (any, error) { return get(a[0], a[1], true) }),
		expr.Function(fnIn, func(a ...any) (any, error) { return in(a[0], a[1]), nil }),
		expr.Function(fnPlain, func(a ...any) (any, error) { return plain(a[0]), nil }),
	}
	return append(o, helpers()...)
}

const (
	fnGet    = "$get"
	fnGetOpt = "$getopt"
	fnIn     = "$in"
	fnPlain  = "$plain"
)

// accessPatcher rewrites what expr would do by reflection on a value of
// unknown type (payload, meta and everything read from them):
//   - x.k and x[k] become $get(x, k), which reads a *packet.Map by key,
//     a []any by index, and falls back to expr's own fetch for the rest;
//   - k in x becomes $in(k, x);
//   - arguments of unknown type to expr's builtins (keys, len, toJSON...)
//     are converted to plain Go maps first, which they understand.
type accessPatcher struct{}

func dynamic(n ast.Node) bool {
	t := n.Type()
	return t == nil || t.Kind() == reflect.Interface
}

func (accessPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if !dynamic(n.Node) {
			return
		}
		name := fnGet
		if n.Optional {
			name = fnGetOpt
		}
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: []ast.Node{n.Node, n.Property}})
	case *ast.ChainNode:
		// a?.b.c is nil when a is: every fetch after the first optional
		// one in the chain tolerates nil, as expr's chains do.
		var spine []*ast.CallNode
		for cur := n.Node; ; {
			c, ok := cur.(*ast.CallNode)
			if !ok {
				break
			}
			id, ok := c.Callee.(*ast.IdentifierNode)
			if !ok || (id.Value != fnGet && id.Value != fnGetOpt) {
				break
			}
			spine = append(spine, c)
			cur = c.Arguments[0]
		}
		opt := false
		for _, c := range slices.Backward(spine) {
			id := c.Callee.(*ast.IdentifierNode)
			if id.Value == fnGetOpt {
				opt = true
			} else if opt {
				id.Value = fnGetOpt
			}
		}
	case *ast.BinaryNode:
		if (n.Operator == "in" || n.Operator == "not in") && dynamic(n.Right) {
			var call ast.Node = &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnIn}, Arguments: []ast.Node{n.Left, n.Right}}
			if n.Operator == "not in" {
				call = &ast.UnaryNode{Operator: "not", Node: call}
			}
			ast.Patch(node, call)
		}
	case *ast.BuiltinNode:
		if predicates[n.Name] {
			return // they iterate lists, whose objects $get reads as they are
		}
		for i, a := range n.Arguments {
			if dynamic(a) && !isPlain(a) {
				n.Arguments[i] = &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnPlain}, Arguments: []ast.Node{a}}
			}
		}
	}
}

// predicates are expr's builtins that take a predicate (parser.predicates).
var predicates = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true, "sum": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true, "groupBy": true, "sortBy": true, "reduce": true,
}

func isPlain(n ast.Node) bool {
	c, ok := n.(*ast.CallNode)
	if !ok {
		return false
	}
	id, ok := c.Callee.(*ast.IdentifierNode)
	return ok && id.Value == fnPlain
}

// get is x[k] for the values packets hold. A missing key is nil (as for
// expr's maps); reading from nil is an error unless optional (x?.k).
func get(x, k any, optional bool) (any, error) {
	switch v := x.(type) {
	case *packet.Map:
		if s, ok := k.(string); ok {
			r, _ := v.Get(s)
			return r, nil
		}
		return nil, fmt.Errorf("cannot index an object with %s", typeOf(k))
	case map[string]any:
		if s, ok := k.(string); ok {
			return v[s], nil
		}
		return nil, fmt.Errorf("cannot index an object with %s", typeOf(k))
	case []any:
		i, ok := index(k)
		if !ok {
			return nil, fmt.Errorf("cannot index a list with %s", typeOf(k))
		}
		if i < 0 {
			i += len(v)
		}
		if i < 0 || i >= len(v) {
			return nil, fmt.Errorf("index %v out of range (list length %d)", k, len(v))
		}
		return v[i], nil
	case nil:
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot fetch %v from nil (write ?. or ?? for optional fields)", k)
	}
	return runtime.Fetch(x, k), nil // expr's own rules for other types (it panics on error; the VM recovers)
}

func index(k any) (int, bool) {
	switch i := k.(type) {
	case int:
		return i, true
	case int64:
		return int(i), true
	}
	return 0, false
}

func typeOf(v any) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("%T", v)
}

// in is k in x: a key of an object, an element of a list.
func in(k, x any) bool {
	switch v := x.(type) {
	case *packet.Map:
		s, ok := k.(string)
		if !ok {
			return false
		}
		_, has := v.Get(s)
		return has
	case nil:
		return false
	}
	return runtime.In(k, plain(x))
}

// plain converts packet values to what expr's builtins take: *packet.Map
// becomes map[string]any, all the way down. Slices are copied only when
// they hold a Map.
func plain(v any) any {
	switch x := v.(type) {
	case *packet.Map:
		m := make(map[string]any, x.Len())
		for _, e := range x.Entries() {
			m[e.Key] = plain(e.Value)
		}
		return m
	case []any:
		var out []any
		for i, e := range x {
			p := plain(e)
			if out == nil {
				if _, isMap := e.(*packet.Map); !isMap {
					if _, isList := e.([]any); !isList {
						continue
					}
				}
				out = make([]any, len(x))
				copy(out, x[:i])
			}
			out[i] = p
		}
		if out == nil {
			return x
		}
		return out
	}
	return v
}

// toPacket converts an expression's result to a JSON-like packet value:
// Go maps become *packet.Map (keys sorted, since a Go map has no order),
// integers int64, floats float64, times upstream's timestamp form.
func toPacket(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, int64, float64, *packet.Map:
		return v, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case time.Time:
		return packet.FormatTS(x), nil
	case time.Duration:
		return x.Seconds(), nil
	case []byte:
		return string(x), nil
	case []any:
		var out []any
		for i, e := range x {
			c, err := toPacket(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if out == nil && !sameValue(c, e) {
				out = make([]any, len(x))
				copy(out, x[:i])
			}
			if out != nil {
				out[i] = c
			}
		}
		if out == nil {
			return x, nil
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := packet.NewMap(len(keys))
		for _, k := range keys {
			c, err := toPacket(x[k])
			if err != nil {
				return nil, fmt.Errorf(".%s: %w", k, err)
			}
			m.AppendNew(k, c)
		}
		return m, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > 1<<63-1 {
			return float64(u), nil
		}
		return int64(u), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			c, err := toPacket(rv.Index(i).Interface())
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			m := make(map[string]any, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				m[it.Key().String()] = it.Value().Interface()
			}
			return toPacket(m)
		}
	}
	return nil, fmt.Errorf("a value of Go type %T cannot go in a packet", v)
}

// sameValue says whether toPacket left e as it was (cheap checks only:
// what it changes is always a different type or a new container).
func sameValue(c, e any) bool {
	switch e.(type) {
	case nil, bool, string, int64, float64, *packet.Map:
		return true
	case []any:
		a, b := c.([]any), e.([]any)
		return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
	}
	return false
}

// joinErrs is errors.Join, kept apart so a nil list stays a nil error.
func joinErrs(errs []error) error { return errors.Join(errs...) }
